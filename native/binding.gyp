{
  # PEFT Lab's native CPU kernels (see peft_native.c). Built by scripts/build-native.sh:
  #   node-gyp rebuild --nodedir=/usr      (system Node headers; nothing is downloaded)
  # Links Debian's OpenBLAS (libopenblas-dev): libopenblas.so.0 must be present at run time.
  "targets": [
    {
      # Kernels with transcendentals (exp, erf: unary, GELU, softmax): -ffast-math lets glibc's
      # libmvec vectorise expf and erff. Compile-only flag: it is not passed to the link, so
      # crtfastmath.o (flush-to-zero for the whole process) is never linked in.
      "target_name": "peft_math",
      "type": "static_library",
      "sources": ["peft_math.c"],
      "cflags": ["-O3", "-std=c11", "-fPIC", "-ffast-math", "-Wall", "-Wextra"]
    },
    {
      # LayerNorm, dropout, AdamW: IEEE arithmetic without fused multiply-add, so that dropout and
      # AdamW round exactly as the wasm backend does (-fno-trapping-math only lets floorf vectorise);
      # -fopenmp-simd only enables `omp simd` pragmas.
      "target_name": "peft_kernels",
      "type": "static_library",
      "sources": ["peft_kernels.c"],
      "cflags": ["-O3", "-std=c11", "-fPIC", "-ffp-contract=off", "-fno-math-errno", "-fno-trapping-math", "-fopenmp-simd", "-Wall", "-Wextra"]
    },
    {
      "target_name": "peft_native",
      "dependencies": ["peft_math", "peft_kernels"],
      # peft_native.c exports the entry points, one file per kernel family, over peft_napi.c's
      # argument readers; -fvisibility=hidden keeps their plain names (softmax, transpose, ...) out
      # of the process's symbol table, so nothing else loaded can interpose on them.
      "sources": [
        "peft_native.c", "peft_napi.c", "peft_pool.c",
        "peft_native_matmul.c", "peft_native_reduce.c", "peft_native_transpose.c", "peft_native_copy.c",
        "peft_native_elementwise.c", "peft_native_softmax.c", "peft_native_norm.c", "peft_native_dropout.c",
        "peft_native_optimizer.c"
      ],
      "include_dirs": ["/usr/include/x86_64-linux-gnu/openblas-pthread", "/usr/include/openblas"],
      "libraries": ["-lopenblas", "-lmvec", "-lm", "-lpthread"],
      "cflags": ["-O3", "-std=c11", "-fvisibility=hidden", "-Wall", "-Wextra", "-Wno-unused-parameter"],
      "defines": ["NAPI_VERSION=8", "NAPI_DISABLE_CPP_EXCEPTIONS"]
    }
  ]
}
