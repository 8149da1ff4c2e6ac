/* Lua 5.4 on wasm32-wasi, included before every Lua source file.
 *
 * wasi-libc has no setjmp/longjmp (WebAssembly would need its exception
 * handling proposal for them), so a Lua error cannot unwind to a pcall: it
 * ends the program with the error on stderr (lua_wasi_throw in wasi.c), which
 * wasmhttp answers with 500 and logs. A CGI script runs once per request, so
 * that is the same as an uncaught error. No shell (os.execute) and no
 * temporary file names (os.tmpname) either: both fail as Lua documents it
 * when a platform lacks them. */
_Noreturn void lua_wasi_throw(void *L);
#define LUAI_THROW(L, c) lua_wasi_throw(L)
#define LUAI_TRY(L, c, a) { a }
#define luai_jmpbuf int
#define l_system(cmd) ((cmd) == NULL ? 0 : -1)
#define LUA_TMPNAMBUFSIZE 16
#define lua_tmpnam(b, e) { (b)[0] = '\0'; e = 1; }
