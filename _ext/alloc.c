/* A caching allocator for numpy's data buffers (installed through numpy's PyDataMem_Handler API).
 *
 * Why: a training step allocates and frees the same large arrays (the input projection of a sequence, the
 * stacked outputs, their gradients) every iteration.  glibc serves blocks above its mmap threshold with
 * fresh mmap()ed pages and trims its heap top back to the OS, so each iteration pays a page fault per 4 KiB
 * touched -- on this virtual machine that was half of an RNN training step.  Keeping freed large blocks
 * for reuse removes those faults, as PyTorch's caching allocators do.
 *
 * Policy:
 *  - every block carries a 16-byte header (its size class and the bytes asked for), so free() and
 *    realloc() never depend on the size numpy passes;
 *  - blocks under MG_CACHE_MIN bytes go straight to malloc (glibc's own bins serve them well);
 *  - larger ones are rounded up to one of 8 size classes per power of two (at most 12.5% more address
 *    space; pages never touched cost nothing) and, when freed, kept on their class's free list while the
 *    idle bytes stay under the limit (mg_cache_set_limit); otherwise they are freed at once;
 *  - a block reused by calloc is cleared with memset, a fresh one comes from calloc.
 * One mutex guards the lists: numpy may allocate from any thread that holds the GIL, and from threads
 * that released it.
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kernels.h"

#define MG_CACHE_MIN ((size_t)4 << 10)     /* smallest cached block: 4 KiB */
#define MG_CLASS_BITS 3                    /* 8 size classes per power of two */
#define MG_NUM_CLASSES (64 << MG_CLASS_BITS)
#define MG_HEADER 16                       /* keeps malloc's 16-byte alignment */

typedef struct {
    size_t cls;          /* size class, or MG_NUM_CLASSES for an uncached (small or huge) block */
    size_t nbytes;       /* bytes the caller asked for */
} header;

typedef struct free_block {
    struct free_block *next;
} free_block;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER; /* guards everything below */
static free_block *lists[MG_NUM_CLASSES];
static size_t idle_bytes, idle_blocks, limit_bytes = (size_t)512 << 20;
static unsigned long long hits, misses;

/* fork() while another thread holds the lock would leave it locked forever in the child: hold it across the
 * fork instead (registered once, when the module loads). */
static void fork_prepare(void) { pthread_mutex_lock(&lock); }
static void fork_parent(void) { pthread_mutex_unlock(&lock); }
static void fork_child(void) { pthread_mutex_unlock(&lock); }
__attribute__((constructor)) static void register_fork_handlers(void)
{
    pthread_atfork(fork_prepare, fork_parent, fork_child);
}

/* The class of a size >= MG_CACHE_MIN and the capacity it stands for (>= size). */
static size_t size_class(size_t size)
{
    int top = 63 - __builtin_clzll((unsigned long long)size);               /* 2^top <= size */
    size_t step = (size_t)1 << (top - MG_CLASS_BITS);
    size_t sub = (size - ((size_t)1 << top) + step - 1) / step;           /* 0 .. 8 */
    return ((size_t)top << MG_CLASS_BITS) + sub;
}

static size_t class_capacity(size_t cls)
{
    size_t top = cls >> MG_CLASS_BITS, sub = cls & ((1 << MG_CLASS_BITS) - 1);
    return ((size_t)1 << top) + sub * ((size_t)1 << (top - MG_CLASS_BITS));
}

static void *finish(char *base, size_t cls, size_t nbytes)
{
    header *h = (header *)base;
    h->cls = cls;
    h->nbytes = nbytes;
    return base + MG_HEADER;
}

static int cacheable(size_t size)
{
    return size >= MG_CACHE_MIN && size <= ((size_t)1 << 62);
}

/* A block from the class's free list, or NULL. */
static char *take(size_t cls)
{
    char *base = NULL;
    pthread_mutex_lock(&lock);
    if (lists[cls]) {
        base = (char *)lists[cls];
        lists[cls] = lists[cls]->next;
        idle_bytes -= class_capacity(cls);
        idle_blocks--;
        hits++;
    } else {
        misses++;
    }
    pthread_mutex_unlock(&lock);
    return base;
}

void *mg_cache_malloc(void *ctx, size_t size)
{
    (void)ctx;
    if (size > SIZE_MAX - MG_HEADER - 1)
        return NULL;
    if (!cacheable(size)) {
        char *base = malloc(MG_HEADER + (size ? size : 1));
        return base ? finish(base, MG_NUM_CLASSES, size) : NULL;
    }
    size_t cls = size_class(size);
    char *base = take(cls);
    if (!base)
        base = malloc(MG_HEADER + class_capacity(cls));
    return base ? finish(base, cls, size) : NULL;
}

void *mg_cache_calloc(void *ctx, size_t nelem, size_t elsize)
{
    (void)ctx;
    if (elsize && nelem > (SIZE_MAX - MG_HEADER - 1) / elsize)
        return NULL;
    size_t size = nelem * elsize;
    if (!cacheable(size)) {
        char *base = calloc(1, MG_HEADER + (size ? size : 1));
        return base ? finish(base, MG_NUM_CLASSES, size) : NULL;
    }
    size_t cls = size_class(size);
    char *base = take(cls);
    if (base) {
        memset(base + MG_HEADER, 0, size);
    } else {
        base = calloc(1, MG_HEADER + class_capacity(cls));
    }
    return base ? finish(base, cls, size) : NULL;
}

void mg_cache_free(void *ctx, void *ptr, size_t size)
{
    (void)ctx;
    (void)size;  /* the header knows; numpy's figure has differed from the allocation in the past */
    if (!ptr)
        return;
    char *base = (char *)ptr - MG_HEADER;
    size_t cls = ((header *)base)->cls;
    if (cls < MG_NUM_CLASSES) {
        size_t cap = class_capacity(cls);
        pthread_mutex_lock(&lock);
        if (idle_bytes + cap <= limit_bytes) {
            free_block *b = (free_block *)base;
            b->next = lists[cls];
            lists[cls] = b;
            idle_bytes += cap;
            idle_blocks++;
            base = NULL;
        }
        pthread_mutex_unlock(&lock);
    }
    free(base);
}

void *mg_cache_realloc(void *ctx, void *ptr, size_t new_size)
{
    if (!ptr)
        return mg_cache_malloc(ctx, new_size);
    header *h = (header *)((char *)ptr - MG_HEADER);
    if (h->cls == MG_NUM_CLASSES && !cacheable(new_size)) {
        if (new_size > SIZE_MAX - MG_HEADER - 1)
            return NULL;
        char *base = realloc(h, MG_HEADER + (new_size ? new_size : 1));
        return base ? finish(base, MG_NUM_CLASSES, new_size) : NULL;
    }
    if (h->cls < MG_NUM_CLASSES && cacheable(new_size) && new_size <= class_capacity(h->cls)) {
        h->nbytes = new_size;
        return ptr;
    }
    void *out = mg_cache_malloc(ctx, new_size);
    if (!out)
        return NULL;  /* the old block stays valid, as realloc promises */
    memcpy(out, ptr, h->nbytes < new_size ? h->nbytes : new_size);
    mg_cache_free(ctx, ptr, 0);
    return out;
}

void mg_cache_empty(void)
{
    free_block *all[MG_NUM_CLASSES];
    size_t cls;
    pthread_mutex_lock(&lock);
    for (cls = 0; cls < MG_NUM_CLASSES; cls++) {
        all[cls] = lists[cls];
        lists[cls] = NULL;
    }
    idle_bytes = idle_blocks = 0;
    pthread_mutex_unlock(&lock);
    for (cls = 0; cls < MG_NUM_CLASSES; cls++) {
        while (all[cls]) {
            free_block *next = all[cls]->next;
            free(all[cls]);
            all[cls] = next;
        }
    }
}

void mg_cache_set_limit(size_t bytes)
{
    pthread_mutex_lock(&lock);
    limit_bytes = bytes;
    int over = idle_bytes > bytes;
    pthread_mutex_unlock(&lock);
    if (over)
        mg_cache_empty();
}

void mg_cache_stats(size_t *idle, size_t *blocks, size_t *limit, unsigned long long *hit,
                    unsigned long long *miss)
{
    pthread_mutex_lock(&lock);
    *idle = idle_bytes;
    *blocks = idle_blocks;
    *limit = limit_bytes;
    *hit = hits;
    *miss = misses;
    pthread_mutex_unlock(&lock);
}
