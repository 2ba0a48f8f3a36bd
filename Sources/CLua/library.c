// The standard library functions whose work an argument sets, bounded.
//
// Lua's library loops run in C, where no count hook fires, and some of them loop for as long as an
// argument says whatever the size of their result: string.rep with empty strings, table.move over
// an empty range, table.unpack up to the stack limit, table.sort comparing long strings. Each
// function here wraps the stock one: it reads the arguments the way the stock function will,
// without raising; leaves every case that the stock function refuses to the stock function (so
// its own catchable error is raised, with its own message); refuses work over a per-call cap with
// a catchable error naming the cap; charges the rest to the invocation's instruction budget; and
// then calls the stock function in its own frame, so that error messages name the function as the
// caller wrote it (`bad argument #1 to 'rep'`).
//
// The wrappers replace the stock functions in the library tables themselves, before the sandbox
// copies them: `package.loaded` then names them as Lua names its own functions in messages
// (`bad argument #1 to 'string.rep'` when called through pcall).
#include "shim.h"

#include <limits.h>
#include <string.h>

/// Stock Lua refuses a table.unpack or string.byte whose results do not fit the stack (1,000,000
/// slots); anything at or above this is left to it.
#define CLUA_STOCK_STACK_LIMIT 1000000

static int call_original(lua_State *L) {
    lua_CFunction original = lua_tocfunction(L, lua_upvalueindex(1));
    return original(L);
}

/// Argument `arg` as an integer the way luaL_checkinteger reads it; 0 when it would raise instead.
static int read_integer(lua_State *L, int arg, lua_Integer *value) {
    int isnum = 0;
    *value = lua_tointegerx(L, arg, &isnum);
    return isnum;
}

/// Argument `arg` as luaL_optinteger reads it; 0 when it would raise instead.
static int read_optional_integer(lua_State *L, int arg, lua_Integer fallback, lua_Integer *value) {
    if (lua_isnoneornil(L, arg)) {
        *value = fallback;
        return 1;
    }
    return read_integer(L, arg, value);
}

/// Tables whose metatable has __len, __index or __newindex are refused by the table functions:
/// their loops would call handler code from C for as long as __len says.
static void require_plain(lua_State *L, int arg, const char *name) {
    if (lua_type(L, arg) != LUA_TTABLE || !lua_getmetatable(L, arg)) return;
    int fancy = 0;
    const char *fields[] = {"__len", "__index", "__newindex"};
    for (int i = 0; i < 3; i++) {
        lua_pushstring(L, fields[i]);
        if (lua_rawget(L, -2) != LUA_TNIL) fancy = 1;
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    if (fancy) luaL_error(L, "%s: tables with __len, __index or __newindex metamethods are not supported", name);
}

/// Charges `units` for the call `name` is about to make, or refuses it (catchably) when that is more
/// than one call may do: a budget can be large, and no single C call may run long before the
/// deadline is looked at again.
static void charge_call(lua_State *L, const char *name, uint64_t units) {
    clua_context *ctx = clua_getcontext(L);
    if (ctx->max_call_work > 0 && units > ctx->max_call_work) {
        luaL_error(L, "%s: too much work for one call (%I units; the limit is %I)", name, (lua_Integer)(units > (uint64_t)LUA_MAXINTEGER ? LUA_MAXINTEGER : (lua_Integer)units),
                   (lua_Integer)ctx->max_call_work);
    }
    clua_charge_work(L, units);
}

static lua_Unsigned log2_ceiling(lua_Unsigned n) {
    lua_Unsigned bits = 0;
    while (n > ((lua_Unsigned)1 << bits) && bits < 63) bits++;
    return bits;
}

// string.rep(s, n [, sep]): n iterations even when s and sep are empty.
static int bounded_rep(lua_State *L) {
    size_t l = 0, lsep = 0;
    lua_Integer n;
    if (!lua_isstring(L, 1) || !read_integer(L, 2, &n)) return call_original(L);
    if (!lua_isnoneornil(L, 3) && !lua_isstring(L, 3)) return call_original(L);
    lua_tolstring(L, 1, &l);
    if (!lua_isnoneornil(L, 3)) lua_tolstring(L, 3, &lsep);
    if (n <= 0 || l + lsep < l || l + lsep > (size_t)INT_MAX / (size_t)n) return call_original(L);
    clua_context *ctx = clua_getcontext(L);
    size_t total = l * (size_t)n + lsep * (size_t)(n - 1);
    if (ctx->max_string_bytes > 0 && total > ctx->max_string_bytes) {
        return luaL_error(L, "string.rep: a result of %I bytes exceeds the limit of %I bytes", (lua_Integer)total,
                          (lua_Integer)ctx->max_string_bytes);
    }
    if (ctx->max_string_bytes > 0 && (size_t)n > ctx->max_string_bytes) {
        return luaL_error(L, "string.rep: %I repetitions exceed the limit of %I", n, (lua_Integer)ctx->max_string_bytes);
    }
    charge_call(L, "string.rep", (uint64_t)n / 4 + total / 64);
    return call_original(L);
}

// Functions that scan their first argument once (a string, or a format): charge its length.
static int bounded_by_length(lua_State *L) {
    if (lua_type(L, 1) == LUA_TSTRING) clua_charge_work(L, lua_rawlen(L, 1) / 64);
    return call_original(L);
}

// table.move(a1, f, e, t [, a2]): e - f + 1 reads and writes, even of nils.
static int bounded_move(lua_State *L) {
    lua_Integer f, e, t;
    if (!read_integer(L, 2, &f) || !read_integer(L, 3, &e) || !read_integer(L, 4, &t)) return call_original(L);
    int tt = !lua_isnoneornil(L, 5) ? 5 : 1;
    require_plain(L, 1, "table.move");
    require_plain(L, tt, "table.move");
    if (e < f) return call_original(L);
    if (!(f > 0 || e < LUA_MAXINTEGER + f)) return call_original(L);  // "too many elements to move"
    lua_Integer n = e - f + 1;
    if (!(t <= LUA_MAXINTEGER - n + 1)) return call_original(L);      // "destination wrap around"
    clua_context *ctx = clua_getcontext(L);
    if (ctx->max_elements > 0 && n > ctx->max_elements) {
        return luaL_error(L, "table.move: %I elements exceed the limit of %I", n, ctx->max_elements);
    }
    charge_call(L, "table.move", (uint64_t)n);
    return call_original(L);
}

// table.insert(t, pos, v) and table.remove(t, pos) shift the elements from pos to #t; an append
// (insert(t, v)) or a pop (remove(t)) shifts none.
static int bounded_shift(lua_State *L) {
    if (lua_type(L, 1) == LUA_TTABLE) {
        const char *name = lua_tostring(L, lua_upvalueindex(2));
        require_plain(L, 1, name);
        lua_Integer length = (lua_Integer)lua_rawlen(L, 1), pos;
        int inserting = name[6] == 'i';  /* "table.insert" */
        int positioned = inserting ? lua_gettop(L) >= 3 : !lua_isnoneornil(L, 2);
        if (positioned && read_integer(L, 2, &pos) && pos >= 1 && pos <= length) {
            charge_call(L, name, (uint64_t)(length - pos) + 1);
        }
    }
    return call_original(L);
}

// table.concat(t, sep, i, j): stops at the first element that is not a string or number, so the
// elements it reads exist; charge the range up to the table's border.
static int bounded_concat(lua_State *L) {
    if (lua_type(L, 1) != LUA_TTABLE) return call_original(L);
    require_plain(L, 1, "table.concat");
    lua_Integer length = (lua_Integer)lua_rawlen(L, 1), i, j;
    if (!read_optional_integer(L, 3, 1, &i) || !read_optional_integer(L, 4, length, &j)) return call_original(L);
    if (i <= j) {
        lua_Unsigned n = (lua_Unsigned)j - (lua_Unsigned)i + 1;
        lua_Unsigned present = (lua_Unsigned)length + 1;
        charge_call(L, "table.concat", n < present ? n : present);
    }
    return call_original(L);
}

// table.unpack(t, i, j): j - i + 1 results, up to the stack limit (beyond it stock Lua refuses).
static int bounded_unpack(lua_State *L) {
    if (lua_type(L, 1) != LUA_TTABLE) return call_original(L);
    require_plain(L, 1, "table.unpack");
    lua_Integer i, j;
    if (!read_optional_integer(L, 2, 1, &i) || !read_optional_integer(L, 3, (lua_Integer)lua_rawlen(L, 1), &j)) {
        return call_original(L);
    }
    if (i <= j) {
        lua_Unsigned n = (lua_Unsigned)j - (lua_Unsigned)i;
        if (n < CLUA_STOCK_STACK_LIMIT) charge_call(L, "table.unpack", n + 1);
    }
    return call_original(L);
}

// table.sort(t [, comp]): n log n comparisons, and comparing two strings costs their length.
static int bounded_sort(lua_State *L) {
    if (lua_type(L, 1) != LUA_TTABLE) return call_original(L);
    require_plain(L, 1, "table.sort");
    lua_Unsigned n = lua_rawlen(L, 1);
    if (n >= (lua_Unsigned)INT_MAX) return call_original(L);  /* stock Lua: "array too big" */
    if (n > 1) {
        lua_Unsigned depth = log2_ceiling(n);
        // The comparisons first, before the scan below reads n elements: a table whose length
        // lies (its border found in the hash part) is refused here, not scanned.
        charge_call(L, "table.sort", n * depth);
        lua_Unsigned bytes = 0;
        for (lua_Unsigned k = 1; k <= n; k++) {
            if (lua_rawgeti(L, 1, (lua_Integer)k) == LUA_TSTRING) bytes += lua_rawlen(L, -1);
            lua_pop(L, 1);
        }
        charge_call(L, "table.sort", depth * (bytes / 64));
    }
    return call_original(L);
}

typedef struct BoundedFunction {
    const char *library;  /* NULL: a global */
    const char *name;
    lua_CFunction wrapper;
} BoundedFunction;

// The allow-list's C-side work, in one place: every stock function whose loop an argument sets.
static const BoundedFunction bounded_functions[] = {
    {"string", "rep", bounded_rep},
    {"string", "byte", bounded_by_length},
    {"string", "sub", bounded_by_length},
    {"string", "upper", bounded_by_length},
    {"string", "lower", bounded_by_length},
    {"string", "reverse", bounded_by_length},
    {"string", "format", bounded_by_length},
    {"string", "pack", bounded_by_length},
    {"string", "packsize", bounded_by_length},
    {"string", "unpack", bounded_by_length},
    {"utf8", "len", bounded_by_length},
    {"utf8", "codepoint", bounded_by_length},
    {"utf8", "offset", bounded_by_length},
    {"table", "move", bounded_move},
    {"table", "insert", bounded_shift},
    {"table", "remove", bounded_shift},
    {"table", "concat", bounded_concat},
    {"table", "unpack", bounded_unpack},
    {"table", "sort", bounded_sort},
    {NULL, "tonumber", bounded_by_length},
};

// coroutine.create and coroutine.wrap: a new coroutine starts with a fresh hook counter, so a loop
// creating coroutines that each run a little less than an interval would never meet the hook.
static int charged_coroutine(lua_State *L) {
    clua_charge_work(L, (uint64_t)clua_getcontext(L)->hook_interval);
    return call_original(L);
}

/// Whether argument 1 is the coroutine of a handler invocation (upvalue 2: the host's weak set).
static int is_invocation(lua_State *L) {
    if (lua_type(L, 1) != LUA_TTHREAD) return 0;
    lua_pushvalue(L, 1);
    int found = lua_rawget(L, lua_upvalueindex(2)) != LUA_TNIL;
    lua_pop(L, 1);
    return found;
}

// coroutine.resume: the coroutines of invocations belong to the host; resuming one (from another
// invocation of the same handler, through a global) would hand it forged host results.
static int guarded_resume(lua_State *L) {
    if (is_invocation(L)) return luaL_error(L, "coroutine.resume: cannot resume a handler invocation");
    return call_original(L);
}

/// Deepest nesting of coroutine.close calls (a __close handler closing another coroutine, ...):
/// each level runs in C frames of its own, which Lua 5.4.4 does not count.
#define CLUA_MAX_CLOSE_DEPTH 16

static int guarded_close(lua_State *L) {
    if (is_invocation(L)) return luaL_error(L, "coroutine.close: cannot close a handler invocation");
    if (lua_type(L, 1) != LUA_TTHREAD) return call_original(L);  /* its own argument error */
    clua_context *ctx = clua_getcontext(L);
    if (ctx->close_depth >= CLUA_MAX_CLOSE_DEPTH) return luaL_error(L, "coroutine.close: nested too deeply");
    // coroutine.close reports errors of the closed coroutine as results and raises only before it
    // starts, so the count always comes back down (the worker also resets it per resume).
    ctx->close_depth++;
    int results = call_original(L);
    ctx->close_depth--;
    return results;
}

// setmetatable: __gc runs with hooks off and __mode changes what the collector keeps; both refused.
static int guarded_setmetatable(lua_State *L) {
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        int gc = lua_rawget(L, 2) != LUA_TNIL;
        lua_pop(L, 1);
        lua_pushliteral(L, "__mode");
        int mode = lua_rawget(L, 2) != LUA_TNIL;
        lua_pop(L, 1);
        if (gc || mode) return luaL_error(L, "setmetatable: __gc and __mode metatables are not allowed in handlers");
    }
    return call_original(L);
}

void clua_install_coroutine_guards(lua_State *L) {
    int invocations = lua_gettop(L);
    lua_getglobal(L, "coroutine");
    const char *charged[] = {"create", "wrap"};
    for (int i = 0; i < 2; i++) {
        lua_getfield(L, -1, charged[i]);
        lua_pushcclosure(L, charged_coroutine, 1);
        lua_setfield(L, -2, charged[i]);
    }
    lua_getfield(L, -1, "resume");
    lua_pushvalue(L, invocations);
    lua_pushcclosure(L, guarded_resume, 2);
    lua_setfield(L, -2, "resume");
    lua_getfield(L, -1, "close");
    lua_pushvalue(L, invocations);
    lua_pushcclosure(L, guarded_close, 2);
    lua_setfield(L, -2, "close");
    lua_pop(L, 1);
    lua_getglobal(L, "setmetatable");
    lua_pushcclosure(L, guarded_setmetatable, 1);
    lua_setglobal(L, "setmetatable");
    lua_settop(L, invocations - 1);
}

void clua_install_bounded_library(lua_State *L) {
    for (size_t k = 0; k < sizeof bounded_functions / sizeof bounded_functions[0]; k++) {
        const BoundedFunction *f = &bounded_functions[k];
        if (f->library != NULL) lua_getglobal(L, f->library); else lua_pushglobaltable(L);
        lua_getfield(L, -1, f->name);
        lua_pushfstring(L, "%s.%s", f->library != NULL ? f->library : "_G", f->name);
        lua_pushcclosure(L, f->wrapper, 2);
        lua_setfield(L, -2, f->name);
        lua_pop(L, 1);
    }
    lua_getglobal(L, "string");
    clua_set_pattern_functions(L);
    lua_pop(L, 1);
}
