{
  "targets": [
    {
      "target_name": "aes_gcm",
      "sources": ["aes_gcm.c", "block_key.c"]
    }
  ]
}
