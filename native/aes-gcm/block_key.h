#ifndef CAIRN_BLOCK_KEY_H
#define CAIRN_BLOCK_KEY_H

#include <node_api.h>

/* Adds blockKey to the module's exports; 0 when N-API refused. */
int register_block_key(napi_env env, napi_value exports);

#endif
