{
  "targets": [
    {
      "target_name": "ambit_native",
      "sources": ["ambit.c"],
      "cflags": ["-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-O2"]
    }
  ]
}
