{
  "targets": [
    {
      "target_name": "gear_chunk",
      "sources": ["gear_chunk.c"],
      "cflags": ["-O3"]
    }
  ]
}
