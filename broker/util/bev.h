/*
 * bev.h - reading a socket bufferevent in large reads.
 *
 * libevent 2.1 reads a socket at most 4096 bytes per read (EVBUFFER_MAX_READ in buffer.c;
 * bufferevent_set_max_single_read cannot raise it), and reads once per loop turn: a
 * connection that receives 100 MB/s costs 25,000 turns of epoll_wait + ioctl(FIONREAD) +
 * readv a second. mg_bev_read_more, called from a read callback, takes what else the
 * socket holds in one readv into the input buffer's free space. A TLS bufferevent
 * (bufferevent_openssl over its own socket) takes one record (16 KiB) a loop turn: there
 * mg_bev_read_more decrypts the further records the socket already holds, with SSL_read.
 *
 * Writes have the same limit at 16 KiB (MAX_SINGLE_WRITE_DEFAULT in bufferevent-internal.h):
 * a connection that sends 150 MB/s of entries costs 9,000 writev + epoll_wait a second.
 * Unlike the read limit, bufferevent_set_max_single_write raises it: MG_BEV_WRITE_MAX is
 * what a bulk sender sets: the broker's bookie client, a bookie answering reads, and the
 * broker's client connections (consumer dispatch), see conn_bev_limits in broker/conn.
 */
#ifndef MG_BEV_H
#define MG_BEV_H

#include <stddef.h>

struct bufferevent;

/* Read up to max more bytes from bev's socket into its input, in one readv, when that
 * input holds at least MG_BEV_READ_MORE_MIN bytes (libevent's read was probably cut short;
 * below that the socket was most likely drained and a read would only find EAGAIN), within
 * the read high watermark and only while reading is enabled. Returns the bytes read; 0 also
 * for EAGAIN, end of stream and errors, which the bufferevent's own next read sees and
 * reports as usual. A filtering bufferevent or a pair is left alone.
 * A TLS bufferevent on a socket, once its handshake is done: SSL_read until the socket is
 * drained or max is reached, and past max to the end of the record it cut (less than 16 KiB
 * more: the rest would wait for the socket's next bytes). An SSL_read that fails for good (a
 * bad record, logged with OpenSSL's reason; close_notify) shuts the socket's read side, so
 * that the bufferevent's next read reports it at once. */
#define MG_BEV_READ_MORE_MIN 4096
size_t mg_bev_read_more(struct bufferevent *bev, size_t max);

/* Bytes one write of a bulk sender's socket may take (at most the socket's send buffer
 * takes them; the rest waits for the next writable event as usual). */
#define MG_BEV_WRITE_MAX (1024 * 1024)

#endif
