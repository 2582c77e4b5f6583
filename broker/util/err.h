/*
 * err.h - magnetar's error codes.
 *
 * Functions return 0 on success or a negative -MG_E* code. One X-macro list gives each
 * code its name, its text and the Pulsar ServerError it maps to when it reaches a client,
 * so the three never drift apart.
 */
#ifndef MG_ERR_H
#define MG_ERR_H

#include <stddef.h>

/* X(name, text, pulsar ServerError value) */
#define MG_ERR_LIST(X)                                                                             \
    X(MG_OK, "ok", 0)                                                                              \
    X(MG_ENOMEM, "out of memory", 0)                                                               \
    X(MG_EINVAL, "invalid argument", 0)                                                            \
    X(MG_ENOTSUP, "operation not supported", 22)                                                   \
    X(MG_ECANCELED, "operation canceled", 6)                                                       \
    X(MG_ETOOBIG, "message too large", 0)                                                          \
    X(MG_ECHECKSUM, "checksum mismatch", 9)                                                        \
    X(MG_EPROTO, "protocol error", 0)                                                              \
    X(MG_ENOTFOUND, "not found", 11)                                                               \
    X(MG_EEXIST, "already exists", 0)                                                              \
    X(MG_EBUSY, "busy", 5)                                                                         \
    X(MG_EIO, "I/O error", 2)                                                                      \
    X(MG_EFENCED, "ledger fenced", 2)                                                              \
    X(MG_ETIMEDOUT, "timed out", 6)                                                                \
    X(MG_ECLOSED, "closed", 6)                                                                     \
    X(MG_EBADNAME, "invalid topic name", 17)                                                       \
    X(MG_ECONSUMERBUSY, "consumer busy", 5)                                                        \
    X(MG_EPRODUCERBUSY, "producer busy", 16)                                                       \
    X(MG_EPRODUCERFENCED, "producer fenced", 25)                                                   \
    X(MG_ENOSUB, "subscription not found", 12)                                                     \
    X(MG_ENOTREADY, "service not ready", 6)                                                        \
    X(MG_EASSIGN, "consumer assign error", 19)                                                     \
    X(MG_ENOTALLOWED, "not allowed", 22)                                                           \
    X(MG_ETERMINATED, "topic terminated", 15)                                                      \
    X(MG_EMETA, "metadata error", 1)                                                               \
    X(MG_EREADONLY, "read-only", 2)                                                                \
    X(MG_EAGAIN, "try again", 14)                                                                  \
    /* A disk is full (ENOSPC, EDQUOT): nothing was stored; it clears once space is freed.         \
     * BookKeeper: what makes a bookie read-only (its adds then answer EREADONLY). */              \
    X(MG_ENOSPC, "no space left on device", 2)                                                     \
    /* Too few writable bookies for a ledger's ensemble (all read-only, e.g. their disks are       \
     * full, or down). BookKeeper: BKNotEnoughBookiesException (-6), Pulsar: PersistenceError. */  \
    X(MG_ENOBOOKIES, "not enough writable bookies", 2)                                             \
    /* Stored data that can never be read back: its ledger is gone from the metadata, or no        \
     * bookie has the entry, or every copy is corrupt (autoSkipNonRecoverableData decides).        \
     * BookKeeper: NoSuchLedgerExists (-7), NoSuchEntry (-13), DigestMatch (-5); Pulsar:           \
     * ManagedLedgerException.NonRecoverableLedgerException -> PersistenceError. */                \
    X(MG_ENONRECOVERABLE, "data not recoverable", 2)                                               \
    /* A credential that does not authenticate (missing, malformed, wrong key, expired).           \
     * Pulsar: AuthenticationError. */                                                             \
    X(MG_EAUTH, "authentication failed", 3)                                                        \
    /* A role not allowed to do what it asked (authorizationEnabled). Pulsar: AuthorizationError.  \
     */                                                                                            \
    X(MG_EAUTHZ, "not authorized", 4)                                                              \
    /* A producer refused: its topic's backlog is over the quota (Pulsar's                         \
     * TopicBacklogQuotaExceededException), policy producer_request_hold / producer_exception. */  \
    X(MG_EQUOTAHOLD, "Cannot create producer on topic with backlog quota exceeded", 7)             \
    X(MG_EQUOTAEXC, "Cannot create producer on topic with backlog quota exceeded", 8)              \
    /* A schema refused: incompatible with the stored versions under the strategy, or not a        \
     * valid definition (Pulsar: IncompatibleSchemaException, InvalidSchemaDataException). */      \
    X(MG_EINCOMPATSCHEMA, "incompatible schema", 18)                                               \
    /* deduplication: the sequence id is above the stored one but not above the accepted one       \
       (its original is still being written); PersistenceError, the client sends again */          \
    X(MG_EDUPUNKNOWN, "Cannot determine whether the message is a duplicate at this time", 2)

#define MG_ERR_ENUM(name, text, se) name,
enum mg_err { MG_ERR_LIST(MG_ERR_ENUM) MG_ERR__COUNT };
#undef MG_ERR_ENUM

/* Text of an error code; accepts either sign. Never NULL. */
const char *mg_strerror(int err);
/* Name of an error code ("MG_EIO"); accepts either sign. Never NULL. */
const char *mg_errname(int err);
/* The Pulsar ServerError value to report to a client for err (either sign). */
int mg_err_server_error(int err);
/* Convert an errno value to the closest -MG_E* code. */
int mg_err_from_errno(int e);

/* Format a message into the caller's error buffer err (errlen bytes, always NUL-terminated,
 * truncated when longer); nothing when err is NULL or errlen is 0. */
void mg_set_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
