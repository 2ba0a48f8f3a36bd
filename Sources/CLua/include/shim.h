// CLua: Debian's liblua5.4 as Swift sees it, plus the little C that Swift cannot be.
//
// Duties of this unit:
//  - wrap the Lua API macros Swift cannot import (clua_pop, clua_pcall, ...);
//  - own the allocator that enforces the per-state memory cap (only while Lua code runs: an
//    allocation made while a Swift frame is on the stack never fails against the cap, so no
//    memory error can unwind through Swift);
//  - own the count hook that enforces the instruction budget and the wall-clock deadline by
//    yielding (uncatchable) or, where Lua cannot yield, by raising on every instruction;
//  - own the trampoline through which every Swift host function is called: Swift returns a
//    status, and only this C code raises or yields afterwards;
//  - provide string.find/match/gmatch/gsub on a step-limited matcher, because the stock
//    matcher runs in C where no hook fires.
#ifndef CLUA_SHIM_H
#define CLUA_SHIM_H

#include <lua5.4/lua.h>
#include <lua5.4/lauxlib.h>
#include <lua5.4/lualib.h>
#include <stddef.h>
#include <stdint.h>

/// What a host function returns to the trampoline besides a result count.
#define CLUA_HOST_ERROR (-1)  /* the error message is on top of the stack: raise it */
#define CLUA_HOST_YIELD (-2)  /* yield the coroutine; resumed with (true, results...) or (false, message) */

/// Why the count hook stopped an invocation.
#define CLUA_KILL_NONE 0
#define CLUA_KILL_INSTRUCTIONS 1
#define CLUA_KILL_DEADLINE 2

/// Per-state bookkeeping shared by C and Swift. The state's extra space points at it, so every
/// thread of the state (they copy the main thread's extra space) finds it.
typedef struct clua_context {
    size_t memory_used;
    size_t memory_peak;
    size_t memory_limit;        /* 0: unlimited */
    int enforce_memory;         /* 1 only while Lua code runs */
    int64_t instructions_left;  /* budget of the invocation being resumed */
    double deadline;            /* CLOCK_MONOTONIC seconds; 0: none */
    int kill_reason;            /* CLUA_KILL_* */
    int hook_interval;          /* instructions between two count-hook calls */
    lua_State *invocation;      /* the coroutine of the invocation being resumed */
    int host_yield;             /* set by the trampoline when it yields for a host function */
    char kill_source[LUA_IDSIZE]; /* where the limit was hit: chunk name ... */
    int kill_line;              /* ... and line (0: unknown) */
    int64_t pattern_step_limit; /* matcher steps one pattern call may take */
    size_t max_string_bytes;    /* largest string.rep result, and most repetitions; 0: none */
    int64_t max_elements;       /* most elements one table.move may move; 0: none */
    uint64_t max_call_work;     /* most units of work one bounded library call may be charged; 0: none */
    int close_depth;            /* coroutine.close calls now nested (library.c) */
    void *host;                 /* the Swift object that owns the state (unretained) */
    int (*dispatch)(lua_State *L, void *host, int function_id);
} clua_context;

/// Creates a state whose allocator and extra space use `ctx`. Returns NULL when out of memory.
lua_State *clua_newstate(clua_context *ctx);
clua_context *clua_getcontext(lua_State *L);

/// Records where a limit was hit: the running Lua function at `level` of `L`.
void clua_record_kill_place(lua_State *L, int level);

/// Pushes `file:line: ` of the first frame at or above `level` that runs handler code (a chunk
/// loaded from a file, `@path`), skipping C functions and the host's own Lua wrappers; or "".
void clua_where_handler(lua_State *L, int level);

/// Installs the count hook on `L`; threads created from it afterwards inherit it.
void clua_sethook(lua_State *L);

/// Pushes a closure that calls `ctx->dispatch` with `function_id`.
void clua_push_hostfunction(lua_State *L, int function_id);

/// Pushes the step-limited `find`, `match`, `gmatch` and `gsub` into the table at the top.
void clua_set_pattern_functions(lua_State *L);

/// Pushes `charge(n)`, which counts n units of C-side work against the instruction budget.
void clua_push_charge_function(lua_State *L);

/// Counts `units` of C-side work against the running invocation's budget, saturating. Once the
/// budget or the deadline is gone it raises the limit error (after arming the hook so that no
/// pcall can go on). Only for C functions called from Lua.
void clua_charge_work(lua_State *L, uint64_t units);

/// The same count, without raising: for host functions, whose trampoline raises once Swift has
/// returned. Returns 1 when a limit is now hit.
int clua_note_work(clua_context *ctx, uint64_t units);

/// Replaces the stock library functions whose loops an argument sets with bounded ones (see
/// library.c), in the library tables themselves, and installs the step-limited pattern functions.
/// Call once, after luaL_openlibs and before the sandbox copies the libraries.
void clua_install_bounded_library(lua_State *L);

/// Replaces coroutine.create/wrap (charged), coroutine.resume/close (no invocation's coroutine, close
/// nesting capped) and setmetatable (no __gc or __mode) with guarded ones, in the real tables. Pops
/// the table of invocation coroutines (weak keys) from the top of the stack.
void clua_install_coroutine_guards(lua_State *L);

/// Current CLOCK_MONOTONIC time in seconds.
double clua_monotonic_now(void);

// Wrappers for the API macros.
static inline const char *clua_typename(lua_State *L, int idx) { return lua_typename(L, lua_type(L, idx)); }
static inline void clua_collectgarbage(lua_State *L) { lua_gc(L, LUA_GCCOLLECT); }
static inline void clua_pop(lua_State *L, int n) { lua_pop(L, n); }
static inline void clua_newtable(lua_State *L) { lua_newtable(L); }
static inline int clua_registryindex(void) { return LUA_REGISTRYINDEX; }
static inline int clua_upvalueindex(int i) { return lua_upvalueindex(i); }
static inline int clua_pcall(lua_State *L, int nargs, int nresults, int msgh) {
    return lua_pcall(L, nargs, nresults, msgh);
}
static inline int clua_loadbuffer(lua_State *L, const char *buff, size_t sz, const char *name) {
    return luaL_loadbufferx(L, buff, sz, name, "t");
}
static inline void clua_pushcfunction(lua_State *L, lua_CFunction f) { lua_pushcfunction(L, f); }
static inline void clua_insert(lua_State *L, int idx) { lua_insert(L, idx); }
static inline void clua_remove(lua_State *L, int idx) { lua_remove(L, idx); }
static inline void clua_replace(lua_State *L, int idx) { lua_replace(L, idx); }
static inline const char *clua_tostring_raw(lua_State *L, int idx, size_t *len) {
    /* Only for values already known to be strings: a number would be converted in place. */
    return lua_type(L, idx) == LUA_TSTRING ? lua_tolstring(L, idx, len) : NULL;
}
static inline int clua_isinteger(lua_State *L, int idx) { return lua_isinteger(L, idx); }
static inline lua_Integer clua_tointeger(lua_State *L, int idx) { return lua_tointegerx(L, idx, NULL); }
static inline lua_Number clua_tonumber(lua_State *L, int idx) { return lua_tonumberx(L, idx, NULL); }
static inline void clua_pushbytes(lua_State *L, const void *bytes, size_t len) {
    lua_pushlstring(L, (const char *)bytes, len);
}
static inline int clua_ref(lua_State *L) { return luaL_ref(L, LUA_REGISTRYINDEX); }
static inline void clua_unref(lua_State *L, int ref) { luaL_unref(L, LUA_REGISTRYINDEX, ref); }
static inline int clua_getref(lua_State *L, int ref) { return lua_rawgeti(L, LUA_REGISTRYINDEX, ref); }

#endif
