{
  # PEFT Lab's native CPU kernels (see peft_native.c). Built by scripts/build-native.sh:
  #   node-gyp rebuild --nodedir=/usr      (system Node headers; nothing is downloaded)
  # Links Debian's OpenBLAS (libopenblas-dev): libopenblas.so.0 must be present at run time.
  "targets": [
    {
      # Unary transcendental kernels: -ffast-math lets glibc's libmvec vectorise expf and erff.
      "target_name": "peft_math",
      "type": "static_library",
      "sources": ["peft_math.c"],
      "cflags": ["-O3", "-std=c11", "-fPIC", "-ffast-math", "-Wall", "-Wextra"]
    },
    {
      "target_name": "peft_native",
      "dependencies": ["peft_math"],
      "sources": ["peft_native.c"],
      "include_dirs": ["/usr/include/x86_64-linux-gnu/openblas-pthread", "/usr/include/openblas"],
      "libraries": ["-lopenblas", "-lmvec", "-lm"],
      "cflags": ["-O3", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"]
    }
  ]
}
