/* key: coroutine-local storage (see include/coro.h, "coroutine-local
 * storage"), pthread keys per coroutine.
 *
 * A key is a slot number in the low bits and the slot's generation above
 * them, so a deleted key (whose slot a later create may take again) never
 * matches: a get compares the key stored with the value and the key
 * defined for the slot now, three loads and two compares.  Each
 * coroutine's values, and the thread's own flow's, are an array indexed
 * by slot, made at its first set and freed when it finishes. */
#include "coroutine.h"
#include "sys.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

#define SLOT_BITS 8
#define SLOTS (1u << SLOT_BITS) /* CORO_KEYS_MAX */
#define SLOT_OF(key) ((key) & (SLOTS - 1))
#define ROUNDS 4                /* PTHREAD_DESTRUCTOR_ITERATIONS */

_Static_assert(SLOTS == CORO_KEYS_MAX, "coro.h says how many keys there are");

struct coro__keys {
    uint32_t n;                 /* slots held */
    struct coro__key_value {
        coro_key_t key;         /* the key it was set with; 0: never */
        void *value;
    } v[];
};

/* The keys defined now: slot i holds key (0 when free) and destructor. */
static struct {
    _Atomic coro_key_t key;
    void (*_Atomic destructor)(void *);
} defs[SLOTS];
static uint32_t gens[SLOTS];    /* the generation a slot's next key gets */
static pthread_mutex_t defs_lock = PTHREAD_MUTEX_INITIALIZER;

int coro_key_create(coro_key_t *key, void (*destructor)(void *))
{
    if (!key)
        return EINVAL;
    pthread_mutex_lock(&defs_lock);
    for (uint32_t i = 0; i < SLOTS; i++) {
        if (atomic_load_explicit(&defs[i].key, memory_order_relaxed))
            continue;
        /* Generation 0 is never used: key 0 (a zeroed variable) is no key.
         * A slot whose generations are used up is retired, never wrapped:
         * a deleted key is not handed out again. */
        uint32_t gen = gens[i] + 1;
        if (gen >= (UINT32_C(1) << (32 - SLOT_BITS)))
            continue;
        gens[i] = gen;
        coro_key_t k = (gen << SLOT_BITS) | i;
        atomic_store_explicit(&defs[i].destructor, destructor, memory_order_relaxed);
        atomic_store_explicit(&defs[i].key, k, memory_order_release);
        pthread_mutex_unlock(&defs_lock);
        *key = k;
        return 0;
    }
    pthread_mutex_unlock(&defs_lock);
    return EAGAIN;
}

/* 1 while key is defined. */
static int defined(coro_key_t key)
{
    return key && atomic_load_explicit(&defs[SLOT_OF(key)].key, memory_order_acquire) == key;
}

int coro_key_delete(coro_key_t key)
{
    int err = EINVAL;

    pthread_mutex_lock(&defs_lock);
    if (defined(key)) {
        atomic_store_explicit(&defs[SLOT_OF(key)].key, 0, memory_order_release);
        atomic_store_explicit(&defs[SLOT_OF(key)].destructor, NULL, memory_order_relaxed);
        err = 0;
    }
    pthread_mutex_unlock(&defs_lock);
    return err;
}

/* The values of the running flow: the coroutine's, or the thread's own. */
static inline struct coro__keys **values_of(struct coro__thread *t)
{
    return t->current ? &t->current->keys : &t->keys;
}

void *coro_getspecific(coro_key_t key)
{
    struct coro__thread *t = coro__tl;
    struct coro__keys *ks;
    uint32_t i = SLOT_OF(key);

    if (!t || !(ks = *values_of(t)) || i >= ks->n || ks->v[i].key != key ||
        atomic_load_explicit(&defs[i].key, memory_order_relaxed) != key)
        return NULL;
    return ks->v[i].value;
}

int coro_setspecific(coro_key_t key, const void *value)
{
    struct coro__thread *t;
    uint32_t i = SLOT_OF(key);

    if (!defined(key))
        return EINVAL;
    int err = coro__thread_need(&t);
    if (err)
        return err;
    struct coro__keys **ksp = values_of(t), *ks = *ksp;
    if (!ks || i >= ks->n) {
        if (!value)
            return 0; /* NULL is what an unset key reads as */
        uint32_t n = ks ? ks->n : 0, want = 8;
        while (want <= i)
            want *= 2;
        struct coro__keys *grown = coro__realloc(ks, sizeof *ks + want * sizeof ks->v[0]);
        if (!grown)
            return ENOMEM;
        for (uint32_t j = n; j < want; j++)
            grown->v[j] = (struct coro__key_value){0, NULL};
        grown->n = want;
        *ksp = ks = grown;
    }
    ks->v[i].key = key;
    ks->v[i].value = (void *)value;
    return 0;
}

void coro__keys_finish(struct coro__keys **ksp)
{
    /* A destructor may set values again (even grow the array): pthread's
     * rule, a few rounds, then whatever is left is dropped. */
    for (int round = 0; round < ROUNDS && *ksp; round++) {
        int called = 0;
        for (uint32_t i = 0; *ksp && i < (*ksp)->n; i++) {
            struct coro__key_value *kv = &(*ksp)->v[i];
            coro_key_t key = kv->key;
            void *value = kv->value;
            kv->value = NULL;
            if (!value || !key ||
                atomic_load_explicit(&defs[i].key, memory_order_acquire) != key)
                continue;
            void (*d)(void *) = atomic_load_explicit(&defs[i].destructor, memory_order_relaxed);
            if (d) {
                d(value);
                called = 1;
            }
        }
        if (!called)
            break;
    }
    free(*ksp);
    *ksp = NULL;
}
