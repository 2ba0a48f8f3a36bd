// Lua pattern matching (string.find, match, gmatch, gsub) with a step budget.
//
// Derived from the pattern-matching part of Lua 5.4's lstrlib.c:
//   Copyright (C) 1994-2022 Lua.org, PUC-Rio.
//   Permission is hereby granted, free of charge, to any person obtaining a copy of this software
//   and associated documentation files (the "Software"), to deal in the Software without
//   restriction, including without limitation the rights to use, copy, modify, merge, publish,
//   distribute, sublicense, and/or sell copies of the Software, and to permit persons to whom the
//   Software is furnished to do so, subject to the following conditions:
//   The above copyright notice and this permission notice shall be included in all copies or
//   substantial portions of the Software.
//   THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR IMPLIED, INCLUDING
//   BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS FOR A PARTICULAR PURPOSE AND
//   NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM,
//   DAMAGES OR OTHER LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
//   OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.
//
// The stock matcher backtracks in C, where no count hook fires: ("a"):rep(1500):find(".-.-b")
// runs for seconds and no instruction budget can stop it. This matcher keeps the documented
// semantics of Lua 5.4 patterns and counts its steps: every 1024 steps are charged to the
// invocation's instruction budget (and the deadline is checked), and one call may take at most
// `pattern_step_limit` steps. Exceeding either raises a clear error from C.
#include "shim.h"

#include <ctype.h>
#include <string.h>

#define PATTERN_MAX_CAPTURES 32
#define PATTERN_MAX_DEPTH 200
#define CAP_UNFINISHED (-1)
#define CAP_POSITION (-2)
#define ESC '%'
#define SPECIALS "^$*+?.([%-"
#define STEP_CHUNK 1024

typedef struct MatchState {
    const char *src_init;
    const char *src_end;
    const char *p_end;
    lua_State *L;
    clua_context *ctx;
    int64_t steps_total;
    int64_t steps_chunk;
    int depth;
    int level;
    struct {
        const char *init;
        ptrdiff_t len;
    } capture[PATTERN_MAX_CAPTURES];
} MatchState;

static const char *match(MatchState *ms, const char *s, const char *p);

// Charges the steps taken since the last charge to the invocation budget.
static void charge_steps(MatchState *ms) {
    clua_context *ctx = ms->ctx;
    ms->steps_total += STEP_CHUNK;
    ms->steps_chunk = 0;
    if (ctx->pattern_step_limit > 0 && ms->steps_total > ctx->pattern_step_limit) {
        luaL_error(ms->L, "pattern too complex: more than %I matching steps", (lua_Integer)ctx->pattern_step_limit);
    }
    if (ctx->kill_reason == CLUA_KILL_NONE) {
        ctx->instructions_left -= STEP_CHUNK;
        if (ctx->instructions_left <= 0) {
            ctx->kill_reason = CLUA_KILL_INSTRUCTIONS;
        } else if (ctx->deadline > 0 && clua_monotonic_now() > ctx->deadline) {
            ctx->kill_reason = CLUA_KILL_DEADLINE;
        }
        if (ctx->kill_reason != CLUA_KILL_NONE) clua_record_kill_place(ms->L, 1);
    }
    if (ctx->kill_reason != CLUA_KILL_NONE) {
        // The hook takes over at the next instruction of whatever catches this error, in the
        // invocation's own coroutine too when this runs in one the handler made.
        lua_sethook(ms->L, lua_gethook(ms->L), LUA_MASKCOUNT, 1);
        if (ctx->invocation != NULL && ctx->invocation != ms->L) lua_sethook(ctx->invocation, lua_gethook(ms->L), LUA_MASKCOUNT, 1);
        luaL_error(ms->L, ctx->kill_reason == CLUA_KILL_DEADLINE ? "deadline exceeded" : "instruction limit exceeded");
    }
}

static inline void step(MatchState *ms) {
    if (++ms->steps_chunk >= STEP_CHUNK) charge_steps(ms);
}

static void step_by(MatchState *ms, size_t n) {
    ms->steps_chunk += (int64_t)n;
    while (ms->steps_chunk >= STEP_CHUNK) {
        int64_t rest = ms->steps_chunk - STEP_CHUNK;
        charge_steps(ms);
        ms->steps_chunk = rest;
    }
}

static int check_capture(MatchState *ms, int l) {
    l -= '1';
    if (l < 0 || l >= ms->level || ms->capture[l].len == CAP_UNFINISHED) {
        return luaL_error(ms->L, "invalid capture index %%%d", l + 1);
    }
    return l;
}

static int capture_to_close(MatchState *ms) {
    int level = ms->level;
    for (level--; level >= 0; level--) {
        if (ms->capture[level].len == CAP_UNFINISHED) return level;
    }
    return luaL_error(ms->L, "invalid pattern capture");
}

static const char *class_end(MatchState *ms, const char *p) {
    switch (*p++) {
        case ESC:
            if (p == ms->p_end) luaL_error(ms->L, "malformed pattern (ends with '%%')");
            return p + 1;
        case '[':
            if (*p == '^') p++;
            do { /* the first character of a set is literal, even ']' */
                if (p == ms->p_end) luaL_error(ms->L, "malformed pattern (missing ']')");
                if (*(p++) == ESC && p < ms->p_end) p++;
            } while (*p != ']');
            return p + 1;
        default:
            return p;
    }
}

static int match_class(int c, int cl) {
    int res;
    switch (tolower(cl)) {
        case 'a': res = isalpha(c); break;
        case 'c': res = iscntrl(c); break;
        case 'd': res = isdigit(c); break;
        case 'g': res = isgraph(c); break;
        case 'l': res = islower(c); break;
        case 'p': res = ispunct(c); break;
        case 's': res = isspace(c); break;
        case 'u': res = isupper(c); break;
        case 'w': res = isalnum(c); break;
        case 'x': res = isxdigit(c); break;
        case 'z': res = (c == 0); break; /* deprecated, still accepted by Lua 5.4 */
        default: return cl == c;
    }
    if (isupper(cl)) res = !res;
    return res;
}

// `p` is at '[', `ec` at the closing ']'.
static int match_bracket_class(int c, const char *p, const char *ec) {
    int sig = 1;
    if (*(p + 1) == '^') {
        sig = 0;
        p++;
    }
    while (++p < ec) {
        if (*p == ESC) {
            p++;
            if (match_class(c, (unsigned char)*p)) return sig;
        } else if (*(p + 1) == '-' && p + 2 < ec) {
            p += 2;
            if ((unsigned char)*(p - 2) <= c && c <= (unsigned char)*p) return sig;
        } else if ((unsigned char)*p == c) {
            return sig;
        }
    }
    return !sig;
}

static int single_match(MatchState *ms, const char *s, const char *p, const char *ep) {
    if (s >= ms->src_end) return 0;
    int c = (unsigned char)*s;
    switch (*p) {
        case '.': return 1;
        case ESC: return match_class(c, (unsigned char)*(p + 1));
        case '[': return match_bracket_class(c, p, ep - 1);
        default: return (unsigned char)*p == c;
    }
}

static const char *match_balance(MatchState *ms, const char *s, const char *p) {
    if (p + 1 >= ms->p_end) luaL_error(ms->L, "malformed pattern (missing arguments to '%%b')");
    if (s >= ms->src_end || *s != *p) return NULL;
    int b = *p, e = *(p + 1), cont = 1;
    while (++s < ms->src_end) {
        step(ms);
        if (*s == e) {
            if (--cont == 0) return s + 1;
        } else if (*s == b) {
            cont++;
        }
    }
    return NULL;
}

static const char *max_expand(MatchState *ms, const char *s, const char *p, const char *ep) {
    ptrdiff_t i = 0;
    while (single_match(ms, s + i, p, ep)) {
        step(ms);
        i++;
    }
    while (i >= 0) {
        const char *res = match(ms, s + i, ep + 1);
        if (res) return res;
        i--;
    }
    return NULL;
}

static const char *min_expand(MatchState *ms, const char *s, const char *p, const char *ep) {
    for (;;) {
        const char *res = match(ms, s, ep + 1);
        if (res != NULL) return res;
        if (!single_match(ms, s, p, ep)) return NULL;
        s++;
    }
}

static const char *start_capture(MatchState *ms, const char *s, const char *p, int what) {
    if (ms->level >= PATTERN_MAX_CAPTURES) luaL_error(ms->L, "too many captures");
    ms->capture[ms->level].init = s;
    ms->capture[ms->level].len = what;
    ms->level++;
    const char *res = match(ms, s, p);
    if (res == NULL) ms->level--;
    return res;
}

static const char *end_capture(MatchState *ms, const char *s, const char *p) {
    int l = capture_to_close(ms);
    ms->capture[l].len = s - ms->capture[l].init;
    const char *res = match(ms, s, p);
    if (res == NULL) ms->capture[l].len = CAP_UNFINISHED;
    return res;
}

static const char *match_capture(MatchState *ms, const char *s, int l) {
    l = check_capture(ms, l);
    size_t len = (size_t)ms->capture[l].len;
    step_by(ms, len);
    if ((size_t)(ms->src_end - s) >= len && memcmp(ms->capture[l].init, s, len) == 0) return s + len;
    return NULL;
}

static const char *match(MatchState *ms, const char *s, const char *p) {
    if (ms->depth-- == 0) luaL_error(ms->L, "pattern too complex"); /* as stock Lua says past its MAXCCALLS */
    step(ms);
init:
    if (p != ms->p_end) {
        switch (*p) {
            case '(':
                if (*(p + 1) == ')') s = start_capture(ms, s, p + 2, CAP_POSITION);
                else s = start_capture(ms, s, p + 1, CAP_UNFINISHED);
                break;
            case ')':
                s = end_capture(ms, s, p + 1);
                break;
            case '$':
                if (p + 1 != ms->p_end) goto dflt;
                s = (s == ms->src_end) ? s : NULL;
                break;
            case ESC:
                switch (*(p + 1)) {
                    case 'b':
                        s = match_balance(ms, s, p + 2);
                        if (s != NULL) {
                            p += 4;
                            goto init;
                        }
                        break;
                    case 'f': {
                        p += 2;
                        if (*p != '[') luaL_error(ms->L, "missing '[' after '%%f' in pattern");
                        const char *ep = class_end(ms, p);
                        int previous = (s == ms->src_init) ? '\0' : (unsigned char)*(s - 1);
                        int current = (s < ms->src_end) ? (unsigned char)*s : '\0';
                        if (!match_bracket_class(previous, p, ep - 1) && match_bracket_class(current, p, ep - 1)) {
                            p = ep;
                            goto init;
                        }
                        s = NULL;
                        break;
                    }
                    case '0': case '1': case '2': case '3': case '4':
                    case '5': case '6': case '7': case '8': case '9':
                        s = match_capture(ms, s, (unsigned char)*(p + 1));
                        if (s != NULL) {
                            p += 2;
                            goto init;
                        }
                        break;
                    default:
                        goto dflt;
                }
                break;
            default:
            dflt: {
                const char *ep = class_end(ms, p);
                if (!single_match(ms, s, p, ep)) {
                    if (*ep == '*' || *ep == '?' || *ep == '-') {
                        p = ep + 1;
                        goto init;
                    }
                    s = NULL;
                } else {
                    const char *res;
                    switch (*ep) {
                        case '?':
                            res = match(ms, s + 1, ep + 1);
                            if (res != NULL) {
                                s = res;
                            } else {
                                p = ep + 1;
                                goto init;
                            }
                            break;
                        case '+': s = max_expand(ms, s + 1, p, ep); break;
                        case '*': s = max_expand(ms, s, p, ep); break;
                        case '-': s = min_expand(ms, s, p, ep); break;
                        default:
                            s++;
                            p = ep;
                            step(ms);
                            goto init;
                    }
                }
                break;
            }
        }
    }
    ms->depth++;
    return s;
}

static void push_one_capture(MatchState *ms, int i, const char *s, const char *e) {
    if (i >= ms->level) {
        if (i != 0) luaL_error(ms->L, "invalid capture index %%%d", i + 1);
        lua_pushlstring(ms->L, s, (size_t)(e - s));
        return;
    }
    ptrdiff_t l = ms->capture[i].len;
    if (l == CAP_UNFINISHED) luaL_error(ms->L, "unfinished capture");
    if (l == CAP_POSITION) lua_pushinteger(ms->L, (ms->capture[i].init - ms->src_init) + 1);
    else lua_pushlstring(ms->L, ms->capture[i].init, (size_t)l);
}

static int push_captures(MatchState *ms, const char *s, const char *e) {
    int n = (ms->level == 0 && s) ? 1 : ms->level;
    luaL_checkstack(ms->L, n, "too many captures");
    for (int i = 0; i < n; i++) push_one_capture(ms, i, s, e);
    return n;
}

static void prepare_state(MatchState *ms, lua_State *L, const char *s, size_t ls, const char *p, size_t lp) {
    ms->L = L;
    ms->ctx = clua_getcontext(L);
    ms->steps_total = 0;
    ms->steps_chunk = 0;
    ms->src_init = s;
    ms->src_end = s + ls;
    ms->p_end = p + lp;
}

static void reprepare_state(MatchState *ms) {
    ms->level = 0;
    ms->depth = PATTERN_MAX_DEPTH;
}

static size_t relative_start(lua_Integer pos, size_t len) {
    if (pos > 0) return (size_t)pos;
    if (pos == 0) return 1;
    if (pos < -(lua_Integer)len) return 1;
    return len + (size_t)pos + 1;
}

static int has_specials(const char *p, size_t l) {
    for (size_t i = 0; i < l; i++) {
        if (p[i] != '\0' && strchr(SPECIALS, p[i]) != NULL) return 1;
    }
    return 0;
}

static const char *plain_find(MatchState *ms, const char *s1, size_t l1, const char *s2, size_t l2) {
    if (l2 == 0) return s1;
    if (l2 > l1) return NULL;
    const char *init;
    l2--;
    l1 = l1 - l2;
    while (l1 > 0 && (init = (const char *)memchr(s1, *s2, l1)) != NULL) {
        init++;
        step_by(ms, l2 + 1);
        if (memcmp(init, s2 + 1, l2) == 0) return init - 1;
        l1 -= (size_t)(init - s1);
        s1 = init;
    }
    return NULL;
}

static int find_or_match(lua_State *L, int find) {
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = relative_start(luaL_optinteger(L, 3, 1), ls) - 1;
    if (init > ls) {
        luaL_pushfail(L);
        return 1;
    }
    MatchState ms;
    prepare_state(&ms, L, s, ls, p, lp);
    if (find && (lua_toboolean(L, 4) || !has_specials(p, lp))) {
        const char *found = plain_find(&ms, s + init, ls - init, p, lp);
        if (found != NULL) {
            lua_pushinteger(L, (found - s) + 1);
            lua_pushinteger(L, (lua_Integer)((found - s) + lp));
            return 2;
        }
    } else {
        const char *s1 = s + init;
        int anchor = (*p == '^');
        if (anchor) {
            p++;
            lp--;
            ms.p_end = p + lp;
        }
        do {
            const char *e;
            reprepare_state(&ms);
            step(&ms);
            if ((e = match(&ms, s1, p)) != NULL) {
                if (find) {
                    lua_pushinteger(L, (s1 - s) + 1);
                    lua_pushinteger(L, e - s);
                    return push_captures(&ms, NULL, 0) + 2;
                }
                return push_captures(&ms, s1, e);
            }
        } while (s1++ < ms.src_end && !anchor);
    }
    luaL_pushfail(L);
    return 1;
}

static int pattern_find(lua_State *L) { return find_or_match(L, 1); }
static int pattern_match(lua_State *L) { return find_or_match(L, 0); }

typedef struct GMatchState {
    const char *src;
    const char *p;
    const char *lastmatch;
    MatchState ms;
} GMatchState;

static int gmatch_next(lua_State *L) {
    GMatchState *gm = (GMatchState *)lua_touserdata(L, lua_upvalueindex(3));
    gm->ms.L = L;
    gm->ms.steps_total = 0;
    gm->ms.steps_chunk = 0;
    for (const char *src = gm->src; src <= gm->ms.src_end; src++) {
        const char *e;
        reprepare_state(&gm->ms);
        step(&gm->ms);
        if ((e = match(&gm->ms, src, gm->p)) != NULL && e != gm->lastmatch) {
            gm->src = gm->lastmatch = e;
            return push_captures(&gm->ms, src, e);
        }
    }
    return 0;
}

static int pattern_gmatch(lua_State *L) {
    size_t ls, lp;
    const char *s = luaL_checklstring(L, 1, &ls);
    const char *p = luaL_checklstring(L, 2, &lp);
    size_t init = relative_start(luaL_optinteger(L, 3, 1), ls) - 1;
    lua_settop(L, 2);
    GMatchState *gm = (GMatchState *)lua_newuserdatauv(L, sizeof(GMatchState), 0);
    if (init > ls) init = ls + 1; /* start after the end: no match */
    prepare_state(&gm->ms, L, s, ls, p, lp);
    gm->src = s + init;
    gm->p = p;
    gm->lastmatch = NULL;
    lua_pushcclosure(L, gmatch_next, 3);
    return 1;
}

static void add_replacement_string(MatchState *ms, luaL_Buffer *b, const char *s, const char *e) {
    size_t l;
    lua_State *L = ms->L;
    const char *news = lua_tolstring(L, 3, &l);
    const char *end = news + l;
    const char *p;
    step_by(ms, l); /* the replacement is walked once per match, whatever it yields */
    while ((p = (const char *)memchr(news, ESC, (size_t)(end - news))) != NULL) {
        luaL_addlstring(b, news, (size_t)(p - news));
        p++;
        if (*p == ESC) {
            luaL_addchar(b, *p);
        } else if (isdigit((unsigned char)*p)) {
            if (*p == '0') {
                luaL_addlstring(b, s, (size_t)(e - s));
            } else {
                push_one_capture(ms, *p - '1', s, e);
                luaL_tolstring(L, -1, NULL);
                lua_remove(L, -2);
                luaL_addvalue(b);
            }
        } else {
            luaL_error(L, "invalid use of '%c' in replacement string", ESC);
        }
        news = p + 1;
    }
    luaL_addlstring(b, news, (size_t)(end - news));
}

static int add_value(MatchState *ms, luaL_Buffer *b, const char *s, const char *e, int tr) {
    lua_State *L = ms->L;
    switch (tr) {
        case LUA_TFUNCTION: {
            lua_pushvalue(L, 3);
            int n = push_captures(ms, s, e);
            lua_call(L, n, 1);
            break;
        }
        case LUA_TTABLE:
            push_one_capture(ms, 0, s, e);
            lua_gettable(L, 3);
            break;
        default:
            add_replacement_string(ms, b, s, e);
            return 1;
    }
    if (!lua_toboolean(L, -1)) {
        lua_pop(L, 1);
        luaL_addlstring(b, s, (size_t)(e - s));
        return 0;
    }
    if (!lua_isstring(L, -1)) return luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
    luaL_addvalue(b);
    return 1;
}

static int pattern_gsub(lua_State *L) {
    size_t srcl, lp;
    const char *src = luaL_checklstring(L, 1, &srcl);
    const char *p = luaL_checklstring(L, 2, &lp);
    const char *lastmatch = NULL;
    int tr = lua_type(L, 3);
    lua_Integer max_s = luaL_optinteger(L, 4, (lua_Integer)srcl + 1);
    int anchor = (*p == '^');
    lua_Integer n = 0;
    int changed = 0;
    luaL_argexpected(L, tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION || tr == LUA_TTABLE, 3,
                     "string/function/table");
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    if (anchor) {
        p++;
        lp--;
    }
    MatchState ms;
    prepare_state(&ms, L, src, srcl, p, lp);
    while (n < max_s) {
        const char *e;
        reprepare_state(&ms);
        step(&ms);
        if ((e = match(&ms, src, p)) != NULL && e != lastmatch) {
            n++;
            changed = add_value(&ms, &b, src, e, tr) | changed;
            src = lastmatch = e;
        } else if (src < ms.src_end) {
            luaL_addchar(&b, *src++);
        } else {
            break;
        }
        if (anchor) break;
    }
    if (!changed) {
        lua_pushvalue(L, 1);
    } else {
        luaL_addlstring(&b, src, (size_t)(ms.src_end - src));
        luaL_pushresult(&b);
    }
    lua_pushinteger(L, n);
    return 2;
}

void clua_set_pattern_functions(lua_State *L) {
    lua_pushcfunction(L, pattern_find);
    lua_setfield(L, -2, "find");
    lua_pushcfunction(L, pattern_match);
    lua_setfield(L, -2, "match");
    lua_pushcfunction(L, pattern_gmatch);
    lua_setfield(L, -2, "gmatch");
    lua_pushcfunction(L, pattern_gsub);
    lua_setfield(L, -2, "gsub");
}
