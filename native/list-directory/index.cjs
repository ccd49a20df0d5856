'use strict';
module.exports = require('./build/Release/list_directory.node');
