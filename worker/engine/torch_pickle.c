/*
 * torch_pickle.c - the pickle machine of torch_pickle.h.
 *
 * A stack machine over a byte cursor. Values live in an arena (vm.objs)
 * and are shared freely between the stack, the memo and containers; the
 * whole arena is freed at the end, so no value has an owner. No global is
 * ever "called": REDUCE recognises the few callables a state dict uses and
 * builds the result itself. Invariants: every read is bounds-checked
 * against the pickle size; every stack pop checks the stack (and the
 * innermost MARK) first; memo indices are capped so a hostile index cannot
 * make us allocate without bound.
 */
#include "torch_pickle.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/err.h"
#include "../../common/log.h"
#include "../../common/xmalloc.h"

#define MEMO_MAX (1u << 24)

enum pv_kind {
    PV_NONE = 0,
    PV_BOOL,
    PV_INT,
    PV_FLOAT,
    PV_STR,
    PV_BYTES,
    PV_TUPLE,
    PV_LIST,
    PV_DICT,
    PV_GLOBAL,
    PV_STORAGE,
    PV_TENSOR,
};

enum pv_global {
    G_ORDERED_DICT = 0,
    G_REBUILD_TENSOR_V2,
    G_REBUILD_PARAMETER,
    G_REBUILD_PARAMETER_STATE,
    G_STORAGE_TYPE,
};

struct pv {
    enum pv_kind kind;
    int64_t i; /* INT, BOOL; STORAGE: numel */
    double f;  /* FLOAT */
    char *s;   /* STR, BYTES; STORAGE: key */
    size_t slen;
    struct pv **items; /* TUPLE, LIST; DICT: key, value, key, value... */
    size_t n, cap;
    enum pv_global g;    /* GLOBAL */
    enum ckpt_elem elem; /* GLOBAL storage type, STORAGE, TENSOR */
    struct pv *storage;  /* TENSOR */
    int64_t offset;      /* TENSOR */
    int ndim;            /* TENSOR */
    int64_t shape[TENSOR_MAX_DIMS], stride[TENSOR_MAX_DIMS];
};

struct vm {
    const char *path;
    const uint8_t *p;
    size_t n, pos, op_at;
    struct pv **objs;
    size_t nobjs, capobjs;
    struct pv **stack;
    size_t sp, capstack;
    size_t *marks;
    size_t nmarks, capmarks;
    struct pv **memo;
    size_t nmemo;     /* slots allocated */
    size_t memo_used; /* slots filled (MEMOIZE stores at this index) */
};

static const char *kind_name(enum pv_kind k)
{
    static const char *names[] = {"None",  "bool", "int",  "float",  "str",     "bytes",
                                  "tuple", "list", "dict", "global", "storage", "tensor"};
    return names[k];
}

static __attribute__((format(printf, 3, 4))) int vm_fail(const struct vm *vm, int rc,
                                                         const char *fmt, ...)
{
    char msg[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return log_error_rc(rc, "'%s': data.pkl at byte %zu: %s", vm->path, vm->op_at, msg);
}

static struct pv *pv_new(struct vm *vm, enum pv_kind kind)
{
    if (vm->nobjs == vm->capobjs) {
        vm->capobjs = vm->capobjs ? vm->capobjs * 2 : 256;
        vm->objs = xrealloc(vm->objs, vm->capobjs * sizeof *vm->objs);
    }
    struct pv *v = xcalloc(1, sizeof *v);
    v->kind = kind;
    vm->objs[vm->nobjs++] = v;
    return v;
}

static void pv_push_item(struct pv *c, struct pv *v)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 4;
        c->items = xrealloc(c->items, c->cap * sizeof *c->items);
    }
    c->items[c->n++] = v;
}

static void push(struct vm *vm, struct pv *v)
{
    if (vm->sp == vm->capstack) {
        vm->capstack = vm->capstack ? vm->capstack * 2 : 64;
        vm->stack = xrealloc(vm->stack, vm->capstack * sizeof *vm->stack);
    }
    vm->stack[vm->sp++] = v;
}

/* floor() is the lowest stack index the current opcode may pop to. */
static size_t floor_(const struct vm *vm)
{
    return vm->nmarks ? vm->marks[vm->nmarks - 1] : 0;
}

static int pop(struct vm *vm, struct pv **out)
{
    if (vm->sp <= floor_(vm))
        return vm_fail(vm, ENC_EINVAL, "stack underflow");
    *out = vm->stack[--vm->sp];
    return 0;
}

static int top(struct vm *vm, struct pv **out)
{
    if (vm->sp <= floor_(vm))
        return vm_fail(vm, ENC_EINVAL, "stack underflow");
    *out = vm->stack[vm->sp - 1];
    return 0;
}

/* pop_mark() pops the innermost MARK; the items above it are
 * stack[*from .. sp). */
static int pop_mark(struct vm *vm, size_t *from)
{
    if (!vm->nmarks)
        return vm_fail(vm, ENC_EINVAL, "no MARK on the stack");
    *from = vm->marks[--vm->nmarks];
    return 0;
}

static int need(struct vm *vm, size_t k)
{
    if (vm->n - vm->pos < k)
        return vm_fail(vm, ENC_EINVAL, "truncated (%zu more bytes needed)", k);
    return 0;
}

static uint64_t rd_le(const uint8_t *p, int k)
{
    uint64_t v = 0;
    for (int i = k - 1; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

static int memo_put(struct vm *vm, uint64_t idx, struct pv *v)
{
    if (idx >= MEMO_MAX)
        return vm_fail(vm, ENC_EINVAL, "memo index %llu too large", (unsigned long long)idx);
    if (idx >= vm->nmemo) {
        size_t nn = vm->nmemo ? vm->nmemo : 64;
        while (nn <= idx)
            nn *= 2;
        vm->memo = xrealloc(vm->memo, nn * sizeof *vm->memo);
        memset(vm->memo + vm->nmemo, 0, (nn - vm->nmemo) * sizeof *vm->memo);
        vm->nmemo = nn;
    }
    if (!vm->memo[idx])
        vm->memo_used++;
    vm->memo[idx] = v;
    return 0;
}

static int memo_get(struct vm *vm, uint64_t idx)
{
    if (idx >= vm->nmemo || !vm->memo[idx])
        return vm_fail(vm, ENC_EINVAL, "memo index %llu was never stored", (unsigned long long)idx);
    push(vm, vm->memo[idx]);
    return 0;
}

static struct pv *new_str(struct vm *vm, enum pv_kind kind, const uint8_t *s, size_t len)
{
    struct pv *v = pv_new(vm, kind);
    v->s = xmalloc(len + 1);
    memcpy(v->s, s, len);
    v->s[len] = 0;
    v->slen = len;
    return v;
}

static int push_str(struct vm *vm, enum pv_kind kind, int lenbytes)
{
    if (need(vm, (size_t)lenbytes))
        return ENC_EINVAL;
    uint64_t len = rd_le(vm->p + vm->pos, lenbytes);
    vm->pos += (size_t)lenbytes;
    if (len > vm->n - vm->pos)
        return vm_fail(vm, ENC_EINVAL, "string of %llu bytes past the end",
                       (unsigned long long)len);
    push(vm, new_str(vm, kind, vm->p + vm->pos, (size_t)len));
    vm->pos += (size_t)len;
    return 0;
}

static int push_int(struct vm *vm, int64_t v)
{
    struct pv *x = pv_new(vm, PV_INT);
    x->i = v;
    push(vm, x);
    return 0;
}

/* Storage type names and their element types. */
static const struct {
    const char *name;
    enum ckpt_elem elem;
} storage_types[] = {
    {"FloatStorage", CKPT_ELEM_F32}, {"BFloat16Storage", CKPT_ELEM_BF16},
    {"HalfStorage", CKPT_ELEM_F16},  {"DoubleStorage", CKPT_ELEM_F64},
    {"LongStorage", CKPT_ELEM_I64},  {"IntStorage", CKPT_ELEM_I32},
    {"ShortStorage", CKPT_ELEM_I16}, {"CharStorage", CKPT_ELEM_I8},
    {"ByteStorage", CKPT_ELEM_U8},   {"BoolStorage", CKPT_ELEM_BOOL},
};

static int push_global(struct vm *vm, const char *mod, const char *name)
{
    struct pv *g = pv_new(vm, PV_GLOBAL);
    if (strcmp(mod, "collections") == 0 && strcmp(name, "OrderedDict") == 0) {
        g->g = G_ORDERED_DICT;
    } else if (strcmp(mod, "torch._utils") == 0 && strcmp(name, "_rebuild_tensor_v2") == 0) {
        g->g = G_REBUILD_TENSOR_V2;
    } else if (strcmp(mod, "torch._utils") == 0 && strcmp(name, "_rebuild_parameter") == 0) {
        g->g = G_REBUILD_PARAMETER;
    } else if (strcmp(mod, "torch._utils") == 0 &&
               strcmp(name, "_rebuild_parameter_with_state") == 0) {
        g->g = G_REBUILD_PARAMETER_STATE;
    } else {
        size_t i, nt = sizeof storage_types / sizeof storage_types[0];
        for (i = 0; i < nt; i++)
            if (strcmp(mod, "torch") == 0 && strcmp(name, storage_types[i].name) == 0)
                break;
        if (i == nt)
            return vm_fail(vm, ENC_ENOTSUP, "unsupported global '%s.%s'", mod, name);
        g->g = G_STORAGE_TYPE;
        g->elem = storage_types[i].elem;
    }
    push(vm, g);
    return 0;
}

/* op_global() reads GLOBAL's two newline-terminated names. */
static int op_global(struct vm *vm)
{
    char parts[2][256];
    for (int k = 0; k < 2; k++) {
        const uint8_t *nl = memchr(vm->p + vm->pos, '\n', vm->n - vm->pos);
        if (!nl)
            return vm_fail(vm, ENC_EINVAL, "unterminated GLOBAL name");
        size_t len = (size_t)(nl - (vm->p + vm->pos));
        if (len >= sizeof parts[k])
            return vm_fail(vm, ENC_EINVAL, "GLOBAL name of %zu bytes", len);
        memcpy(parts[k], vm->p + vm->pos, len);
        parts[k][len] = 0;
        vm->pos += len + 1;
    }
    return push_global(vm, parts[0], parts[1]);
}

static int op_stack_global(struct vm *vm)
{
    struct pv *name, *mod;
    if (pop(vm, &name) || pop(vm, &mod))
        return ENC_EINVAL;
    if (name->kind != PV_STR || mod->kind != PV_STR)
        return vm_fail(vm, ENC_EINVAL, "STACK_GLOBAL needs two strings");
    return push_global(vm, mod->s, name->s);
}

/* int_tuple() reads a tuple of ints into v[0..*k). */
static int int_tuple(struct vm *vm, const struct pv *t, const char *what, int64_t *v, int *k)
{
    if (t->kind != PV_TUPLE)
        return vm_fail(vm, ENC_EINVAL, "tensor %s is a %s, not a tuple", what, kind_name(t->kind));
    if (t->n > TENSOR_MAX_DIMS)
        return vm_fail(vm, ENC_ENOTSUP, "tensor with %zu dimensions (at most %d)", t->n,
                       TENSOR_MAX_DIMS);
    for (size_t i = 0; i < t->n; i++) {
        if (t->items[i]->kind != PV_INT)
            return vm_fail(vm, ENC_EINVAL, "tensor %s[%zu] is not an int", what, i);
        v[i] = t->items[i]->i;
    }
    *k = (int)t->n;
    return 0;
}

static int reduce(struct vm *vm)
{
    struct pv *args, *fn;
    if (pop(vm, &args) || pop(vm, &fn))
        return ENC_EINVAL;
    if (fn->kind != PV_GLOBAL)
        return vm_fail(vm, ENC_EINVAL, "REDUCE on a %s", kind_name(fn->kind));
    if (args->kind != PV_TUPLE)
        return vm_fail(vm, ENC_EINVAL, "REDUCE arguments are a %s", kind_name(args->kind));
    struct pv **a = args->items;
    switch (fn->g) {
    case G_ORDERED_DICT:
        if (args->n != 0)
            return vm_fail(vm, ENC_ENOTSUP, "OrderedDict with %zu arguments", args->n);
        push(vm, pv_new(vm, PV_DICT));
        return 0;
    case G_REBUILD_TENSOR_V2: {
        /* (storage, storage_offset, size, stride, requires_grad, hooks[, metadata]) */
        if (args->n != 6 && args->n != 7)
            return vm_fail(vm, ENC_EINVAL, "_rebuild_tensor_v2 with %zu arguments", args->n);
        if (a[0]->kind != PV_STORAGE)
            return vm_fail(vm, ENC_EINVAL, "_rebuild_tensor_v2 on a %s, not a storage",
                           kind_name(a[0]->kind));
        if (a[1]->kind != PV_INT || a[1]->i < 0)
            return vm_fail(vm, ENC_EINVAL, "bad storage offset");
        struct pv *t = pv_new(vm, PV_TENSOR);
        int ns, nst;
        if (int_tuple(vm, a[2], "size", t->shape, &ns) ||
            int_tuple(vm, a[3], "stride", t->stride, &nst))
            return ENC_EINVAL;
        if (ns != nst)
            return vm_fail(vm, ENC_EINVAL, "size has %d dims, stride %d", ns, nst);
        t->ndim = ns;
        t->storage = a[0];
        t->elem = a[0]->elem;
        t->offset = a[1]->i;
        push(vm, t);
        return 0;
    }
    case G_REBUILD_PARAMETER:
    case G_REBUILD_PARAMETER_STATE:
        if (args->n < 1 || a[0]->kind != PV_TENSOR)
            return vm_fail(vm, ENC_EINVAL, "_rebuild_parameter without a tensor");
        push(vm, a[0]);
        return 0;
    case G_STORAGE_TYPE: break;
    }
    return vm_fail(vm, ENC_ENOTSUP, "REDUCE of a storage type");
}

static int persid(struct vm *vm)
{
    struct pv *pid;
    if (pop(vm, &pid))
        return ENC_EINVAL;
    /* ('storage', torch.<T>Storage, key, location, numel) */
    if (pid->kind != PV_TUPLE || pid->n != 5 || pid->items[0]->kind != PV_STR ||
        strcmp(pid->items[0]->s, "storage") != 0)
        return vm_fail(vm, ENC_ENOTSUP,
                       "persistent id is not ('storage', type, key, "
                       "location, numel)");
    struct pv **a = pid->items;
    if (a[1]->kind != PV_GLOBAL || a[1]->g != G_STORAGE_TYPE)
        return vm_fail(vm, ENC_ENOTSUP, "persistent id names no storage type");
    if (a[2]->kind != PV_STR || a[4]->kind != PV_INT || a[4]->i < 0)
        return vm_fail(vm, ENC_EINVAL, "bad storage key or size in persistent id");
    struct pv *s = pv_new(vm, PV_STORAGE);
    s->elem = a[1]->elem;
    s->s = xstrdup(a[2]->s);
    s->slen = a[2]->slen;
    s->i = a[4]->i;
    push(vm, s);
    return 0;
}

static int setitems(struct vm *vm, size_t from)
{
    if ((vm->sp - from) % 2)
        return vm_fail(vm, ENC_EINVAL, "SETITEMS with an odd number of items");
    if (from == 0 || from <= floor_(vm))
        return vm_fail(vm, ENC_EINVAL, "SETITEMS without a dict");
    struct pv *d = vm->stack[from - 1];
    if (d->kind != PV_DICT)
        return vm_fail(vm, ENC_EINVAL, "SETITEM(S) on a %s", kind_name(d->kind));
    for (size_t i = from; i < vm->sp; i++)
        pv_push_item(d, vm->stack[i]);
    vm->sp = from;
    return 0;
}

static int appends(struct vm *vm, size_t from)
{
    if (from == 0 || from <= floor_(vm))
        return vm_fail(vm, ENC_EINVAL, "APPEND(S) without a list");
    struct pv *l = vm->stack[from - 1];
    if (l->kind != PV_LIST)
        return vm_fail(vm, ENC_EINVAL, "APPEND(S) on a %s", kind_name(l->kind));
    for (size_t i = from; i < vm->sp; i++)
        pv_push_item(l, vm->stack[i]);
    vm->sp = from;
    return 0;
}

static int make_seq(struct vm *vm, enum pv_kind kind, size_t from)
{
    struct pv *t = pv_new(vm, kind);
    for (size_t i = from; i < vm->sp; i++)
        pv_push_item(t, vm->stack[i]);
    vm->sp = from;
    push(vm, t);
    return 0;
}

static int tuple_n(struct vm *vm, size_t k)
{
    if (vm->sp - floor_(vm) < k)
        return vm_fail(vm, ENC_EINVAL, "stack underflow");
    return make_seq(vm, PV_TUPLE, vm->sp - k);
}

/* step() executes one opcode; *done is set by STOP. */
static int step(struct vm *vm, int *done)
{
    struct pv *a, *b;
    size_t from = 0;
    vm->op_at = vm->pos;
    if (need(vm, 1))
        return ENC_EINVAL;
    uint8_t op = vm->p[vm->pos++];
    switch (op) {
    case 0x80: /* PROTO */
        if (need(vm, 1))
            return ENC_EINVAL;
        if (vm->p[vm->pos] > 5)
            return vm_fail(vm, ENC_ENOTSUP, "pickle protocol %d", vm->p[vm->pos]);
        vm->pos++;
        return 0;
    case 0x95: /* FRAME: the length is advisory */
        if (need(vm, 8))
            return ENC_EINVAL;
        vm->pos += 8;
        return 0;
    case '.': /* STOP */ *done = 1; return 0;
    case '(': /* MARK */
        if (vm->nmarks == vm->capmarks) {
            vm->capmarks = vm->capmarks ? vm->capmarks * 2 : 16;
            vm->marks = xrealloc(vm->marks, vm->capmarks * sizeof *vm->marks);
        }
        vm->marks[vm->nmarks++] = vm->sp;
        return 0;
    case '0': /* POP */ return pop(vm, &a);
    case '1': /* POP_MARK */
        if (pop_mark(vm, &from))
            return ENC_EINVAL;
        vm->sp = from;
        return 0;
    case '2': /* DUP */
        if (top(vm, &a))
            return ENC_EINVAL;
        push(vm, a);
        return 0;
    case '}': /* EMPTY_DICT */ push(vm, pv_new(vm, PV_DICT)); return 0;
    case ']': /* EMPTY_LIST */ push(vm, pv_new(vm, PV_LIST)); return 0;
    case ')': /* EMPTY_TUPLE */ push(vm, pv_new(vm, PV_TUPLE)); return 0;
    case 'N': /* NONE */ push(vm, pv_new(vm, PV_NONE)); return 0;
    case 0x88: /* NEWTRUE */
    case 0x89: /* NEWFALSE */
        a = pv_new(vm, PV_BOOL);
        a->i = op == 0x88;
        push(vm, a);
        return 0;
    case 't': /* TUPLE */
        if (pop_mark(vm, &from))
            return ENC_EINVAL;
        return make_seq(vm, PV_TUPLE, from);
    case 'l': /* LIST */
        if (pop_mark(vm, &from))
            return ENC_EINVAL;
        return make_seq(vm, PV_LIST, from);
    case 'd': /* DICT */
        if (pop_mark(vm, &from))
            return ENC_EINVAL;
        if ((vm->sp - from) % 2)
            return vm_fail(vm, ENC_EINVAL, "DICT with an odd number of items");
        return make_seq(vm, PV_DICT, from);
    case 0x85: return tuple_n(vm, 1);      /* TUPLE1 */
    case 0x86: return tuple_n(vm, 2);      /* TUPLE2 */
    case 0x87: return tuple_n(vm, 3);      /* TUPLE3 */
    case 'c': return op_global(vm);        /* GLOBAL */
    case 0x93: return op_stack_global(vm); /* STACK_GLOBAL */
    case 'q':                              /* BINPUT */
    case 'r':                              /* LONG_BINPUT */
    {
        int k = op == 'q' ? 1 : 4;
        if (need(vm, (size_t)k) || top(vm, &a))
            return ENC_EINVAL;
        uint64_t idx = rd_le(vm->p + vm->pos, k);
        vm->pos += (size_t)k;
        return memo_put(vm, idx, a);
    }
    case 0x94: /* MEMOIZE */
        if (top(vm, &a))
            return ENC_EINVAL;
        return memo_put(vm, vm->memo_used, a);
    case 'h': /* BINGET */
    case 'j': /* LONG_BINGET */
    {
        int k = op == 'h' ? 1 : 4;
        if (need(vm, (size_t)k))
            return ENC_EINVAL;
        uint64_t idx = rd_le(vm->p + vm->pos, k);
        vm->pos += (size_t)k;
        return memo_get(vm, idx);
    }
    case 'J': /* BININT */
        if (need(vm, 4))
            return ENC_EINVAL;
        vm->pos += 4;
        return push_int(vm, (int32_t)(uint32_t)rd_le(vm->p + vm->pos - 4, 4));
    case 'K': /* BININT1 */
        if (need(vm, 1))
            return ENC_EINVAL;
        vm->pos += 1;
        return push_int(vm, vm->p[vm->pos - 1]);
    case 'M': /* BININT2 */
        if (need(vm, 2))
            return ENC_EINVAL;
        vm->pos += 2;
        return push_int(vm, (int64_t)rd_le(vm->p + vm->pos - 2, 2));
    case 0x8a: /* LONG1 */
    case 0x8b: /* LONG4 */
    {
        int k = op == 0x8a ? 1 : 4;
        if (need(vm, (size_t)k))
            return ENC_EINVAL;
        uint64_t len = rd_le(vm->p + vm->pos, k);
        vm->pos += (size_t)k;
        if (len > 8)
            return vm_fail(vm, ENC_ENOTSUP, "integer of %llu bytes", (unsigned long long)len);
        if (need(vm, (size_t)len))
            return ENC_EINVAL;
        uint64_t v = len ? rd_le(vm->p + vm->pos, (int)len) : 0;
        if (len && len < 8 && (vm->p[vm->pos + len - 1] & 0x80))
            v |= ~(uint64_t)0 << (8 * len); /* sign-extend */
        vm->pos += (size_t)len;
        return push_int(vm, (int64_t)v);
    }
    case 'G': /* BINFLOAT: big-endian double */
        if (need(vm, 8))
            return ENC_EINVAL;
        {
            uint64_t u = 0;
            for (int i = 0; i < 8; i++)
                u = (u << 8) | vm->p[vm->pos + (size_t)i];
            vm->pos += 8;
            a = pv_new(vm, PV_FLOAT);
            memcpy(&a->f, &u, 8);
            push(vm, a);
        }
        return 0;
    case 'X': return push_str(vm, PV_STR, 4);    /* BINUNICODE */
    case 0x8c: return push_str(vm, PV_STR, 1);   /* SHORT_BINUNICODE */
    case 0x8d: return push_str(vm, PV_STR, 8);   /* BINUNICODE8 */
    case 'T': return push_str(vm, PV_STR, 4);    /* BINSTRING */
    case 'U': return push_str(vm, PV_STR, 1);    /* SHORT_BINSTRING */
    case 'B': return push_str(vm, PV_BYTES, 4);  /* BINBYTES */
    case 'C': return push_str(vm, PV_BYTES, 1);  /* SHORT_BINBYTES */
    case 0x8e: return push_str(vm, PV_BYTES, 8); /* BINBYTES8 */
    case 'Q': return persid(vm);                 /* BINPERSID */
    case 'R': return reduce(vm);                 /* REDUCE */
    case 'b': /* BUILD: state of an OrderedDict (_metadata) or a tensor; ignored */
        if (pop(vm, &a) || top(vm, &b))
            return ENC_EINVAL;
        if (b->kind != PV_DICT && b->kind != PV_TENSOR)
            return vm_fail(vm, ENC_ENOTSUP, "BUILD on a %s", kind_name(b->kind));
        return 0;
    case 's': /* SETITEM */
        if (vm->sp < 3 || vm->sp - 2 <= floor_(vm))
            return vm_fail(vm, ENC_EINVAL, "stack underflow");
        return setitems(vm, vm->sp - 2);
    case 'u': /* SETITEMS */
        if (pop_mark(vm, &from))
            return ENC_EINVAL;
        return setitems(vm, from);
    case 'a': /* APPEND */
        if (vm->sp < 2 || vm->sp - 1 <= floor_(vm))
            return vm_fail(vm, ENC_EINVAL, "stack underflow");
        return appends(vm, vm->sp - 1);
    case 'e': /* APPENDS */
        if (pop_mark(vm, &from))
            return ENC_EINVAL;
        return appends(vm, from);
    default:
        if (op >= 0x20 && op < 0x7f)
            return vm_fail(vm, ENC_ENOTSUP, "unsupported pickle opcode 0x%02x ('%c')", op, op);
        return vm_fail(vm, ENC_ENOTSUP, "unsupported pickle opcode 0x%02x", op);
    }
}

static int collect(struct vm *vm, const struct pv *root, struct torch_pickle_tensor **out,
                   size_t *count)
{
    if (root->kind != PV_DICT)
        return vm_fail(vm, ENC_EINVAL, "the pickled object is a %s, not a state dict",
                       kind_name(root->kind));
    for (size_t i = 0; i + 1 < root->n; i += 2) {
        const struct pv *k = root->items[i], *v = root->items[i + 1];
        if (k->kind == PV_STR && strcmp(k->s, "state_dict") == 0 && v->kind == PV_DICT) {
            root = v;
            break;
        }
    }
    size_t n = 0;
    struct torch_pickle_tensor *t = xcalloc(root->n / 2 + 1, sizeof *t);
    for (size_t i = 0; i + 1 < root->n; i += 2) {
        const struct pv *k = root->items[i], *v = root->items[i + 1];
        if (k->kind != PV_STR || v->kind != PV_TENSOR)
            continue;
        struct torch_pickle_tensor *e = &t[n++];
        e->name = xstrdup(k->s);
        e->storage_key = xstrdup(v->storage->s);
        e->elem = v->elem;
        e->storage_numel = v->storage->i;
        e->offset = v->offset;
        e->ndim = v->ndim;
        memcpy(e->shape, v->shape, sizeof e->shape);
        memcpy(e->stride, v->stride, sizeof e->stride);
    }
    *out = t;
    *count = n;
    return 0;
}

int torch_pickle_load(const char *path, const uint8_t *pkl, size_t n,
                      struct torch_pickle_tensor **out, size_t *count)
{
    struct vm vm = {0};
    int rc = 0, done = 0;
    vm.path = path;
    vm.p = pkl;
    vm.n = n;
    *out = NULL;
    *count = 0;
    while (!done && (rc = step(&vm, &done)) == 0) {
    }
    if (rc == 0) {
        struct pv *root;
        vm.nmarks = 0;
        if (vm.sp != 1)
            rc = vm_fail(&vm, ENC_EINVAL, "STOP with %zu values on the stack", vm.sp);
        else if (pop(&vm, &root) == 0)
            rc = collect(&vm, root, out, count);
    }
    for (size_t i = 0; i < vm.nobjs; i++) {
        free(vm.objs[i]->s);
        free(vm.objs[i]->items);
        free(vm.objs[i]);
    }
    free(vm.objs);
    free(vm.stack);
    free(vm.marks);
    free(vm.memo);
    return rc;
}

void torch_pickle_free(struct torch_pickle_tensor **t, size_t count)
{
    if (!t || !*t)
        return;
    for (size_t i = 0; i < count; i++) {
        free((*t)[i].name);
        free((*t)[i].storage_key);
    }
    free(*t);
    *t = NULL;
}
