'use strict';
module.exports = require('./build/Release/gear_chunk.node');
