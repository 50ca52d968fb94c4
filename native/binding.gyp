{
  "targets": [
    {
      "target_name": "sluice_tun",
      "sources": ["src/tun.c"],
      "cflags": ["-O2", "-Wall", "-Wextra", "-std=gnu11"],
      "conditions": [["OS!='linux'", {"type": "none"}]]
    }
  ]
}
