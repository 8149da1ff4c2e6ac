/* What Lua 5.4 needs from a libc and wasi-libc lacks (see wasi.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include "lua.h"

/* A Lua error without setjmp: it ends the program, saying why. */
_Noreturn void lua_wasi_throw(void *state) {
  lua_State *L = state;
  const char *message = lua_tostring(L, -1);
  fprintf(stderr, "lua: %s\n", message ? message : "(error object is not a string)");
  abort();
}

/* io.tmpfile(): a WASI program has no directory for temporary files. */
FILE *tmpfile(void) {
  errno = ENOTSUP;
  return NULL;
}
