{
  "targets": [
    {
      "target_name": "list_directory",
      "sources": ["list_directory.c"],
      "cflags": ["-O2"]
    }
  ]
}
