{
  "targets": [
    {
      "target_name": "readahead",
      "sources": ["readahead.c"]
    }
  ]
}
