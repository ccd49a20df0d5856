#!/usr/bin/env node
import { serveCommand } from './serve-command.js';

await serveCommand('backend-s3');
