#include "shim.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

double clua_monotonic_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

clua_context *clua_getcontext(lua_State *L) {
    return *(clua_context **)lua_getextraspace(L);
}

// The cap applies only while Lua code runs (enforce_memory). An allocation made for a Swift
// frame is counted but never refused: refusing would raise a memory error that unwinds through
// Swift. A real malloc failure there is fatal, as it is for Swift itself.
static void *clua_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    clua_context *ctx = (clua_context *)ud;
    if (ptr == NULL) osize = 0; /* osize is then a type tag, not a size */
    if (nsize == 0) {
        free(ptr);
        ctx->memory_used -= osize;
        return NULL;
    }
    if (nsize > osize && ctx->enforce_memory) {
        if (ctx->memory_limit != 0 && ctx->memory_used - osize + nsize > ctx->memory_limit) return NULL;
        // Copying in C (string concatenation, string functions) is work no hook sees: charge one
        // instruction per 64 bytes allocated. Once an invocation is over its budget, nothing more
        // is allocated for it: a pcall loop around big copies cannot keep going until the hook
        // comes round.
        if (ctx->kill_reason == CLUA_KILL_NONE) {
            ctx->instructions_left -= (int64_t)((nsize - osize) >> 6);
            if (ctx->instructions_left <= 0) ctx->kill_reason = CLUA_KILL_INSTRUCTIONS;
        }
        if (ctx->kill_reason != CLUA_KILL_NONE) return NULL;
    }
    void *block = realloc(ptr, nsize);
    if (block == NULL) {
        if (!ctx->enforce_memory || nsize <= osize) {
            fprintf(stderr, "moonhook: out of memory while the host held the Lua state\n");
            abort();
        }
        return NULL;
    }
    ctx->memory_used = ctx->memory_used - osize + nsize;
    if (ctx->memory_used > ctx->memory_peak) ctx->memory_peak = ctx->memory_used;
    return block;
}

static int clua_panic(lua_State *L) {
    const char *message = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : "(non-string error)";
    fprintf(stderr, "moonhook: unprotected Lua error: %s\n", message);
    abort();
}

lua_State *clua_newstate(clua_context *ctx) {
    lua_State *L = lua_newstate(clua_alloc, ctx);
    if (L == NULL) return NULL;
    *(clua_context **)lua_getextraspace(L) = ctx;
    lua_atpanic(L, clua_panic);
    return L;
}

static int clua_raise_kill(lua_State *L);

static const char *clua_kill_message(int reason) {
    switch (reason) {
        case CLUA_KILL_INSTRUCTIONS: return "instruction limit exceeded";
        case CLUA_KILL_DEADLINE: return "deadline exceeded";
        default: return "invocation stopped";
    }
}

void clua_record_kill_place(lua_State *L, int level) {
    clua_context *ctx = clua_getcontext(L);
    lua_Debug ar;
    ctx->kill_line = 0;
    ctx->kill_source[0] = '\0';
    for (; lua_getstack(L, level, &ar); level++) {
        /* Handler code only: chunks loaded from files are named "@path"; the host's are not. */
        if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0 && ar.source[0] == '@') {
            memcpy(ctx->kill_source, ar.short_src, sizeof ctx->kill_source);
            ctx->kill_line = ar.currentline;
            return;
        }
    }
}

// Once an invocation is over budget it must not run one more instruction of its own. Yielding
// from a count hook cannot be caught by pcall, so that is the way out wherever Lua can yield.
// Where it cannot (inside a sort comparator, a gsub callback, a metamethod called from C), the
// hook raises instead, and it has already switched itself to fire on every instruction, so any
// pcall that catches the error gets it again at its very next instruction until the unwinding
// reaches a frame that can yield. Message handlers that would run with hooks off never see this
// error: the sandbox's xpcall calls its handler after pcall returned.
static void clua_count_hook(lua_State *L, lua_Debug *ar) {
    (void)ar;
    clua_context *ctx = clua_getcontext(L);
    if (ctx->kill_reason == CLUA_KILL_NONE) {
        ctx->instructions_left -= lua_gethookcount(L);
        if (ctx->instructions_left <= 0) {
            ctx->kill_reason = CLUA_KILL_INSTRUCTIONS;
        } else if (ctx->deadline > 0 && clua_monotonic_now() > ctx->deadline) {
            ctx->kill_reason = CLUA_KILL_DEADLINE;
        } else {
            if (lua_gethookcount(L) != ctx->hook_interval) {
                lua_sethook(L, clua_count_hook, LUA_MASKCOUNT, ctx->hook_interval);
            }
            return;
        }
        clua_record_kill_place(L, 0);
    }
    if (lua_gethookcount(L) != 1) {
        lua_sethook(L, clua_count_hook, LUA_MASKCOUNT, 1);
        /* A coroutine the script made yields to its resumer, not to the host: make the
           invocation's own coroutine stop at its next instruction too. */
        if (ctx->invocation != NULL && ctx->invocation != L) {
            lua_sethook(ctx->invocation, clua_count_hook, LUA_MASKCOUNT, 1);
        }
    }
    if (lua_isyieldable(L)) {
        lua_yield(L, 0);
        return;
    }
    luaL_error(L, "%s", clua_kill_message(ctx->kill_reason));
}

void clua_sethook(lua_State *L) {
    clua_context *ctx = clua_getcontext(L);
    lua_sethook(L, clua_count_hook, LUA_MASKCOUNT, ctx->hook_interval);
}

// Resumed after a host function yielded: the resume arguments are (true, results...) or
// (false, message). Raising here is C raising, after every Swift frame has returned.
static int clua_resume_continuation(lua_State *L, int status, lua_KContext kctx) {
    (void)status;
    (void)kctx;
    if (!lua_toboolean(L, 1)) {
        lua_settop(L, 2);
        return lua_error(L);
    }
    return lua_gettop(L) - 1;
}

static int clua_trampoline(lua_State *L) {
    clua_context *ctx = clua_getcontext(L);
    int function_id = (int)lua_tointegerx(L, lua_upvalueindex(1), NULL);
    int enforcing = ctx->enforce_memory;
    ctx->enforce_memory = 0;
    int result = ctx->dispatch(L, ctx->host, function_id);
    ctx->enforce_memory = enforcing;
    if (ctx->kill_reason != CLUA_KILL_NONE) return clua_raise_kill(L);  /* the host charged work past a limit */
    if (result == CLUA_HOST_ERROR) return lua_error(L);
    if (enforcing && ctx->memory_limit != 0 && ctx->memory_used > ctx->memory_limit) {
        return luaL_error(L, "memory limit exceeded");
    }
    if (result == CLUA_HOST_YIELD) {
        lua_settop(L, 0);
        ctx->host_yield = 1;
        return lua_yieldk(L, 0, 0, clua_resume_continuation);
    }
    return result;
}

void clua_push_hostfunction(lua_State *L, int function_id) {
    lua_pushinteger(L, function_id);
    lua_pushcclosure(L, clua_trampoline, 1);
}

int clua_note_work(clua_context *ctx, uint64_t units) {
    if (units == 0 || ctx->kill_reason != CLUA_KILL_NONE) return ctx->kill_reason != CLUA_KILL_NONE;
    // Saturating: a charge near 2^63 must stop the invocation, not wrap the budget around.
    if (ctx->instructions_left <= 0 || units >= (uint64_t)ctx->instructions_left) {
        ctx->instructions_left = 0;
        ctx->kill_reason = CLUA_KILL_INSTRUCTIONS;
    } else {
        ctx->instructions_left -= (int64_t)units;
        if (ctx->deadline > 0 && clua_monotonic_now() > ctx->deadline) ctx->kill_reason = CLUA_KILL_DEADLINE;
    }
    return ctx->kill_reason != CLUA_KILL_NONE;
}

// Raises the error of a limit that C-side work (or a host function) has just hit, after arming the
// hook: whatever pcall catches it is stopped again at its next instruction.
static int clua_raise_kill(lua_State *L) {
    clua_context *ctx = clua_getcontext(L);
    clua_record_kill_place(L, 1);
    lua_sethook(L, clua_count_hook, LUA_MASKCOUNT, 1);
    /* In a coroutine the handler made, its resumer must stop at once too. */
    if (ctx->invocation != NULL && ctx->invocation != L) lua_sethook(ctx->invocation, clua_count_hook, LUA_MASKCOUNT, 1);
    return luaL_error(L, "%s", clua_kill_message(ctx->kill_reason));
}

void clua_charge_work(lua_State *L, uint64_t units) {
    if (clua_note_work(clua_getcontext(L), units)) clua_raise_kill(L);
}

// charge(n): counts work that a library function is about to do in C, where no hook fires, against
// the invocation's instruction budget. Used by the sandbox's Lua wrappers (coroutine creation,
// load) so that a loop of cheap-looking calls cannot outlast the budget.
static int clua_charge(lua_State *L) {
    lua_Integer n = luaL_checkinteger(L, 1);
    if (n > 0) clua_charge_work(L, (uint64_t)n);
    return 0;
}

void clua_push_charge_function(lua_State *L) {
    lua_pushcfunction(L, clua_charge);
}

void clua_where_handler(lua_State *L, int level) {
    lua_Debug ar;
    for (; lua_getstack(L, level, &ar); level++) {
        if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0 && ar.source[0] == '@') {
            lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
            return;
        }
    }
    lua_pushliteral(L, "");
}
