/* wasi-libc has no setjmp.h; without this empty one, clang would find the
 * host's. Lua does not need it: src/wasi.h replaces its error jumps. */
