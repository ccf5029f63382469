/*
 * string.h for freestanding builds (the clang in PyPI's ziglang ships no C library headers for
 * bare-metal targets; its compiler-rt defines these functions). Only what generated code uses.
 */
#ifndef MCUC_FREESTANDING_STRING_H
#define MCUC_FREESTANDING_STRING_H

#include <stddef.h>

void *memcpy(void *dst, const void *src, size_t n);
void *memmove(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);

#endif /* MCUC_FREESTANDING_STRING_H */
