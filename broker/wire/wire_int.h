/*
 * wire_int.h - what the wire module's two codecs (wire.c, wire_bk.c) share and nobody else
 * needs. Only the module and its unit tests include it.
 */
#ifndef MG_WIRE_INT_H
#define MG_WIRE_INT_H

#include <stddef.h>

/* printf into errmsg (errlen bytes); accepts errmsg NULL or errlen 0 (nothing written). */
void wire_set_err(char *errmsg, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
