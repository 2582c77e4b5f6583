/* svc_int.h - what the svc module's own parts and the connections it owns call back. */
#ifndef MG_SVC_INT_H
#define MG_SVC_INT_H

struct svc;
struct conn;

/* A connection closed itself: drop the service's reference to it. */
void svc_conn_closed(struct svc *s, struct conn *c);

#endif
