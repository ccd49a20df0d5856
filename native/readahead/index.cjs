'use strict';
module.exports = require('./build/Release/readahead.node');
