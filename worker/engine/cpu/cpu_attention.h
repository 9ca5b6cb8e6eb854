/*
 * cpu_attention.h - the cpu backend's blocked attention: its scratch size.
 */
#ifndef ENCORE_CPU_ATTENTION_H
#define ENCORE_CPU_ATTENTION_H

#include <stddef.h>
#include <stdint.h>

/* cpu_attention_scratch_bytes() is the most scratch memory, in bytes over
 * all n_threads threads, that cpu attention uses for q [B,Tq,H,D] and k, v
 * [B,Tk,H,D] (any B): O(1) in Tq and Tk, never Tq x Tk. */
size_t cpu_attention_scratch_bytes(int64_t Tq, int64_t Tk, int64_t H, int64_t D, int n_threads);

#endif
