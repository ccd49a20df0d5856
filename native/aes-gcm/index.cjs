'use strict';
module.exports = require('./build/Release/aes_gcm.node');
