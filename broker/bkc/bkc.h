/*
 * bkc.h - the broker's BookKeeper ledger client: ledgers striped over bookies with write and
 * ack quorums, ensemble changes, fencing and recovery (docs/wire-bookkeeper.md §2-§5, §7).
 *
 * A client (struct bkc_client) owns one connection per bookie (v2 framing by default, what
 * Pulsar brokers use; v3 with bkc_config.use_v3) and reaches ledger metadata through the
 * meta store (meta.h) under the BookKeeper layout: ids from /ledgers/idgen/ID-, metadata at
 * /ledgers/00/0000/L0042 in format v3, writable bookies under /ledgers/available. Ledger
 * handles (struct bkc_ledger) come from bkc_create (a writer) or bkc_open (a reader,
 * optionally after recovery).
 *
 * Life of a ledger, as the managed ledger uses it:
 *   bkc_create -> bkc_add ... (completions in entry order) -> bkc_close -> bkc_ledger_free
 *   bkc_open(recovery=true) -> bkc_read ... -> bkc_ledger_free;  bkc_delete
 *
 * Threading: a client and its ledgers belong to the thread running the loop given to
 * bkc_client_new (whose clock and timers it uses); call everything on it. The meta store must
 * use the same loop.
 * Async calls (docs/style.md §2) take a caller-owned struct bkc_req: a synchronous failure
 * returns <0 and the callback never runs; otherwise the callback runs exactly once, on the
 * loop thread, after the call has returned (never from inside a bkc call). Freeing a ledger
 * handle or the client completes its pending requests with -MG_ECANCELED.
 */
#ifndef MG_BKC_H
#define MG_BKC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;
struct mg_loop;
struct meta_store;
struct bkc_client;
struct bkc_ledger;
struct bkc_transport;

/* Digest types, with the values of LedgerMetadataFormat.DigestType. */
enum bkc_digest {
    BKC_DIGEST_CRC32 = 1,  /* 8 bytes: zlib CRC-32 as a big-endian long */
    BKC_DIGEST_HMAC = 2,   /* 20 bytes: HmacSHA1, key SHA1("mac" || password) */
    BKC_DIGEST_CRC32C = 3, /* 4 bytes: Castagnoli, big-endian (Pulsar's default) */
    BKC_DIGEST_DUMMY = 4,  /* no digest */
};

/* TLS to the bookies (Pulsar's bookkeeperTLS* keys; broker/bkc/README.md "TLS"): START_TLS on
 * each connection, the bookie's certificate verified against trust (empty: the system's CAs),
 * ours presented when cert and key are set. The files are read by bkc_client_new (-MG_EINVAL
 * when they do not load), not kept. */
struct bkc_tls_config {
    bool on;                           /* bookkeeperTLSClientAuthentication */
    const char *cert, *key, *trust;    /* bookkeeperTLS*FilePath (PEM) */
    const char *key_type, *trust_type; /* bookkeeperTLSKeyFileType, bookkeeperTLSTrustCertTypes:
                                          NULL or "PEM" */
    int refresh_s; /* bookkeeperTlsCertFilesRefreshDurationSeconds: the files looked at again at
                      most this often, at a new bookie connection; 0 = never */
};

/* Client configuration; copied by bkc_client_new (strings too). Zero fields take the
 * defaults in brackets (bkc_config_default fills them explicitly). */
struct bkc_config {
    int ensemble_size;        /* managedLedgerDefaultEnsembleSize [2] */
    int write_quorum;         /* managedLedgerDefaultWriteQuorum [2] */
    int ack_quorum;           /* managedLedgerDefaultAckQuorum [2] */
    enum bkc_digest digest;   /* managedLedgerDigestType [CRC32C]; 0 = default */
    const char *password;     /* ledger password (Pulsar: empty) [""] */
    int timeout_ms;           /* bookkeeperClientTimeoutInSeconds*1000: per request [30000] */
    bool use_v3;              /* !bookkeeperUseV2WireProtocol: speak v3 (protobuf Request,
                                 txnId matching) instead of v2 [false] */
    size_t max_frame_size;    /* nettyMaxFrameSizeBytes: the largest frame, 4-byte length
                                 included, sent to or accepted from a bookie; an add whose
                                 frame would be larger is refused (-MG_ETOOBIG), a larger
                                 response fails only its request. Pulsar's broker uses
                                 maxMessageSize + BKC_FRAME_PADDING, as bookies should
                                 [5 MiB + 10 KiB] */
    const char *ledgers_root; /* metadata root [/ledgers] */
    /* How requests reach the bookies (borrowed: must outlive the client); NULL = TCP
     * connections [NULL]. Tests and the simulation pass bkc_fake_transport(fake). */
    const struct bkc_transport *transport;
    uint64_t seed; /* the seed of the bookie choice; 0 = from the clock and the pid [0] */
    struct bkc_tls_config tls; /* off [all zero] */
};

/* What Pulsar adds to maxMessageSize for the frame limits of its connections and of its
 * BookKeeper client (Commands.MESSAGE_SIZE_FRAME_PADDING): room for the headers around an
 * entry of maxMessageSize. */
#define BKC_FRAME_PADDING 10240

/* Fill cfg with the defaults above. */
void bkc_config_default(struct bkc_config *cfg);

/* New client on loop (borrowed; it must outlive the client), reaching metadata through meta
 * (borrowed; it must outlive the client). Returns 0 and *out, or -MG_EINVAL (quorums not E >= Qw >=
 * Qa >= 1, E > 64, unknown digest). No connection is made until a ledger needs a bookie. */
int bkc_client_new(struct mg_loop *loop, struct meta_store *meta, const struct bkc_config *cfg,
                   struct bkc_client **out);
/* Free every ledger handle still open (the handles are invalid afterwards), close the bookie
 * connections and free the client. Every callback still owed runs before this returns (with
 * -MG_ECANCELED for requests that were pending); when called from inside a bkc callback, they
 * run right after that callback returns. Metadata requests still in flight finish silently
 * later, so the meta store may be closed after this. Accepts NULL. */
void bkc_client_free(struct bkc_client *c);

/* ---- requests ------------------------------------------------------------------------ */

struct bkc_req;
typedef void (*bkc_cb)(struct bkc_req *req, int status);

/* One asynchronous request, owned by the caller, zeroed before use (or bkc_req_fini'd after
 * a previous use). It must stay valid until its callback has run. */
struct bkc_req {
    void *data; /* caller's */
    bkc_cb cb;  /* set by the call */
    /* results (valid from the callback on) */
    struct bkc_ledger *ledger; /* create/open: the new handle on success; owned by the
                                  caller, release with bkc_ledger_free */
    int64_t ledger_id;         /* create: the new ledger's id */
    int64_t entry_id;          /* add: the entry's id (bkc_add's entry_id) */
    struct evbuffer **entries; /* read: n_entries payloads in entry order, owned by the
                                  request (bkc_req_fini frees them; take one by setting its
                                  slot to NULL) */
    int n_entries;
    int64_t first_entry; /* read: first entry id of entries[] */
    char errmsg[200];    /* why a request failed ("" when it did not) */
    /* private */
    int status_;
    struct bkc_req *next_;
    void *priv_;
};
/* Free what a completed request holds (read entries). Accepts a zeroed request. */
void bkc_req_fini(struct bkc_req *req);

/* ---- ledgers ------------------------------------------------------------------------- */

/* Custom metadata key/value for a new ledger (Pulsar: application=pulsar, ...). */
struct bkc_kv {
    const char *key;
    const void *value;
    size_t value_len;
};

/* Per-ledger overrides for bkc_create; NULL or zero fields take the client's config. */
struct bkc_create_opts {
    int ensemble_size, write_quorum, ack_quorum;
    const struct bkc_kv *custom; /* borrowed during the call */
    int n_custom;
};

/* Create a ledger: take an id from the metadata store, pick E distinct writable bookies
 * from /ledgers/available (at random, "readonly" excluded) and write its metadata
 * (state OPEN). On success req->ledger is a writer handle and req->ledger_id its id.
 * Sync errors: -MG_EINVAL (bad quorums). Async errors: -MG_ENOBOOKIES (not enough writable
 * bookies; req->errmsg says how many were found), the meta store's errors, -MG_ECANCELED. */
int bkc_create(struct bkc_client *c, const struct bkc_create_opts *o, struct bkc_req *req,
               bkc_cb cb);

/* Open an existing ledger for reading. recovery == false: a CLOSED ledger is readable up to
 * its last entry; an OPEN one up to bkc_ledger_lac (-1 until bkc_read_lac is used).
 * recovery == true and the ledger not CLOSED: mark it IN_RECOVERY, fence it on its last
 * ensemble (the old writer's next add fails with EFENCED), recover the entries the writer
 * may have acknowledged (re-written to their full write quorum) and close it at the last
 * entry found; concurrent recoverers converge through the metadata CAS. On success
 * req->ledger is a read handle. Async errors: -MG_ENOTFOUND (no such ledger), -MG_EIO
 * (bookies unreachable, not enough bookies for recovery; see errmsg), -MG_ECHECKSUM
 * (recovery: every copy of an entry that answered is corrupt and none is missing),
 * -MG_ENOTALLOWED (a bookie refused the password), -MG_EPROTO (corrupt metadata), meta
 * errors. */
int bkc_open(struct bkc_client *c, int64_t ledger_id, bool recovery, struct bkc_req *req,
             bkc_cb cb);

/* Delete a ledger's metadata; bookies drop its data in their GC. -MG_ENOTFOUND (async)
 * when it does not exist. Do not delete a ledger that has an open handle here. */
int bkc_delete(struct bkc_client *c, int64_t ledger_id, struct bkc_req *req, bkc_cb cb);

/* Append payload (borrowed: it must stay alive and unchanged until the callback; its bytes
 * are referenced into the bookie connections, never copied, unless it already holds
 * references itself) as entry entry_id, which must be the next entry of the ledger
 * (bkc_ledger_next_entry): the caller decides the id, bkc checks it (anything else is
 * refused synchronously with -MG_EINVAL, nothing is sent). req->entry_id = entry_id.
 * An entry whose ADD frame would exceed cfg.max_frame_size is refused synchronously with
 * -MG_ETOOBIG (req->errmsg says by how much): nothing is sent, no entry id is used and the
 * ledger takes the next add as if this one had not been tried.
 * The entry completes once ack-quorum bookies of its write set stored it; callbacks run
 * strictly in entry order. Bookie errors and timeouts lead to an ensemble change (adds are
 * held meanwhile and unacknowledged entries are resent to the replacement).
 * Sync errors: -MG_ETOOBIG (see above), -MG_EINVAL (entry_id is not the next entry),
 * -MG_ENOTALLOWED (not a writer handle), -MG_ECLOSED (close started),
 * -MG_EFENCED / -MG_EIO / -MG_ENOTALLOWED (the ledger failed earlier; the same error as
 * then). Async errors: -MG_EFENCED (someone recovered the ledger), -MG_ENOBOOKIES (not
 * enough writable bookies for an ensemble change, e.g. the others answered EREADONLY: their
 * disks are full; errmsg names the bookie and its answer), -MG_EIO (metadata write failed),
 * -MG_ENOTALLOWED (a bookie refused the password), -MG_ECANCELED. */
int bkc_add(struct bkc_ledger *lh, int64_t entry_id, struct evbuffer *payload, struct bkc_req *req,
            bkc_cb cb);
/* bkc_add of an entry whose last tail_len bytes have the CRC32C tail_crc, which the caller
 * computed over these very bytes (the Pulsar frame checksum): a CRC32C digest reads only
 * the bytes before them. A wrong tail_crc makes the stored digest wrong and the entry
 * unreadable, so only pass one computed over the payload as it is. */
int bkc_add_crc(struct bkc_ledger *lh, int64_t entry_id, struct evbuffer *payload,
                uint32_t tail_crc, size_t tail_len, struct bkc_req *req, bkc_cb cb);

/* Close a writer: wait for the pending adds to complete or fail, then CAS the metadata to
 * CLOSED at the last add confirmed. For a read handle it completes with 0 at once (async).
 * The handle stays usable for reads; free it with bkc_ledger_free. Async errors:
 * -MG_EFENCED (the ledger was recovered by someone else with another last entry), meta
 * errors, -MG_ECANCELED. Sync: -MG_EBUSY (close already in progress). */
int bkc_close(struct bkc_ledger *lh, struct bkc_req *req, bkc_cb cb);

/* Read entries first..last (inclusive), pipelined: each from one bookie of its write set,
 * failing over to the next replica on an error, a timeout or a digest / header mismatch.
 * On success req->entries holds the payloads (without BookKeeper's header and digest).
 * Sync errors: -MG_EINVAL (first < 0, first > last, last > bkc_ledger_lac).
 * Async errors: -MG_ENOTFOUND (every replica lacks an entry), -MG_ECHECKSUM (the copies
 * that answered were corrupt), -MG_EIO, -MG_ECANCELED. */
int bkc_read(struct bkc_ledger *lh, int64_t first, int64_t last, struct bkc_req *req, bkc_cb cb);

/* readLastConfirmed for a read handle of an OPEN ledger: ask every bookie of the last
 * ensemble for its last entry and raise bkc_ledger_lac to the highest LAC they carry, once
 * every write quorum has Qw-Qa+1 answers. Completes with 0 (at once for a writer or a
 * CLOSED ledger), -MG_EIO (too few bookies answered), -MG_ENOTALLOWED (EUA),
 * -MG_ECANCELED. Sync: -MG_EBUSY (one already running), -MG_ENOTALLOWED (handle still
 * being opened). */
int bkc_read_lac(struct bkc_ledger *lh, struct bkc_req *req, bkc_cb cb);

/* Free a handle (also from inside a bkc callback). Its pending adds, reads, LAC read and
 * close complete with -MG_ECANCELED: their callbacks run from the loop right after this
 * returns, behind completions already queued (so add callbacks stay in entry order); the
 * requests must stay valid until then. A writer's ledger stays OPEN in the metadata (a later
 * recovery closes it). Accepts NULL. */
void bkc_ledger_free(struct bkc_ledger *lh);

int64_t bkc_ledger_id(const struct bkc_ledger *lh);
/* Last add confirmed: a writer's highest entry with it and all before it acknowledged;
 * a closed ledger's last entry; -1 when none. */
int64_t bkc_ledger_lac(const struct bkc_ledger *lh);
/* A writer's next entry id: the one the next bkc_add must name (entries sent so far + 1). */
int64_t bkc_ledger_next_entry(const struct bkc_ledger *lh);
/* Payload bytes up to and including the LAC entry (the metadata length once closed). */
int64_t bkc_ledger_length(const struct bkc_ledger *lh);
bool bkc_ledger_is_closed(const struct bkc_ledger *lh);
/* The current (last) ensemble: its size and the bookie id at index i (borrowed, valid
 * until the next ensemble change). */
int bkc_ledger_ensemble_size(const struct bkc_ledger *lh);
const char *bkc_ledger_bookie(const struct bkc_ledger *lh, int i);
/* Number of segments (ensembles) in the ledger's metadata. */
int bkc_ledger_num_segments(const struct bkc_ledger *lh);

/* ---- segments and re-replication (autorecovery) ------------------------------------------ */

/* Segment seg (0 <= seg < bkc_ledger_num_segments) of a handle's metadata: its first entry,
 * and the bookie id at ensemble index i (borrowed: valid until the handle's metadata
 * changes). NULL / -1 when out of range. */
int64_t bkc_ledger_segment_first(const struct bkc_ledger *lh, int seg);
const char *bkc_ledger_segment_bookie(const struct bkc_ledger *lh, int seg, int i);
/* The last entry segment seg holds once its end is fixed: the entry before the next segment,
 * or the last entry of a CLOSED ledger (first - 1 when it holds none). -2 for the last
 * segment of a ledger that is not CLOSED: its end belongs to the writer. */
int64_t bkc_ledger_segment_last(const struct bkc_ledger *lh, int seg);

/* Copy what ensemble index idx of segment seg should hold (the entries of the segment whose
 * write set contains idx) to the bookie `to` (an id from /ledgers/available), as BookKeeper's
 * LedgerFragmentReplicator does: each entry is read from another bookie of its write set (the
 * next one on an error, a timeout, a missing or corrupt copy; the body is verified against
 * the digest) and sent unchanged to `to` as a RECOVERY_ADD, which a fenced or closed ledger
 * accepts. At most `window` entries are in flight. lh must be a read handle (bkc_open without
 * recovery) and the segment's end fixed (bkc_ledger_segment_last >= -1). On success
 * req->entry_id is the number of entries copied. Sync errors: -MG_EINVAL (bad segment or
 * index, open last segment), -MG_ENOTALLOWED (not a read handle), -MG_EBUSY (a replication
 * already runs on lh). Async: -MG_ENOTFOUND (no replica has an entry), -MG_ECHECKSUM (only
 * corrupt copies), -MG_EIO (the target refused an add, bookies unreachable; errmsg says
 * which), -MG_ECANCELED. */
int bkc_replicate(struct bkc_ledger *lh, int seg, int idx, const char *to, int window,
                  struct bkc_req *req, bkc_cb cb);
/* Put bookie `to` at ensemble index idx of segment seg in the ledger's metadata (after
 * bkc_replicate copied the fragment there): a CAS on the version lh read; when someone else
 * wrote meanwhile (the writer's ensemble change or close) the metadata is read again and the
 * change redone as long as that segment still starts where it did and still names the
 * bookie replaced. lh's metadata is the new one on success. Sync errors as bkc_replicate's;
 * async: -MG_EBUSY (the segment changed: look again), the meta store's errors. */
int bkc_ledger_set_bookie(struct bkc_ledger *lh, int seg, int idx, const char *to,
                          struct bkc_req *req, bkc_cb cb);
/* Pick `need` distinct bookies at random (the client's generator) from names (a listing of
 * /ledgers/available), skipping "readonly" and the ids in exclude; out gets borrowed names.
 * Returns how many candidates there were (fewer than need: out holds only that many). This
 * is the placement of new ledgers, ensemble changes and re-replication. */
int bkc_pick_bookies(struct bkc_client *c, char *const *names, int n_names, char *const *exclude,
                     int n_ex, int need, const char **out);

/* ---- statistics ------------------------------------------------------------------------ */

/* Per-bookie add statistics since the client started (the broker's /metrics). Latency is
 * from sending an ADD to that bookie to its response. Buckets count their own range (not
 * cumulative); upper bounds in ms: 0.5, 1, 5, 10, 20, 50, 100, 200, 1000, then overflow. */
#define BKC_LAT_BUCKETS 10
struct bkc_bookie_stats {
    const char *id; /* borrowed: valid until the next bkc call */
    bool connected;
    int outstanding;            /* requests in flight */
    int64_t add_count;          /* successful adds */
    int64_t add_errors;         /* failed or timed-out adds */
    int64_t add_latency_sum_us; /* of the successful adds */
    int64_t add_latency_buckets[BKC_LAT_BUCKETS];
};
/* Iterate the bookies the client knows: *pos = 0 first; returns 0 at the end. */
int bkc_client_bookie_stats_next(struct bkc_client *c, size_t *pos, struct bkc_bookie_stats *out);
/* The upper bound (ms) of latency bucket i < BKC_LAT_BUCKETS - 1. */
double bkc_latency_bound_ms(int i);

/* ---- fake bookies (tests, simulation) --------------------------------------------------- */

/* An in-memory BookKeeper cluster (bkc_fake.c) on a loop: bookies that store entries, fence
 * ledgers and answer as a bookie does, with time from the loop and every random choice from
 * one seed (the same calls on a simulated loop replay exactly). A client uses it with
 * bkc_config.transport = bkc_fake_transport(fake). The bookies must also be registered
 * under <ledgers root>/available in the meta store for bkc_create and ensemble changes to
 * pick them (the fake does not touch the meta store). Free the clients first. */
struct bkc_fake;
struct bkc_fake *bkc_fake_new(struct mg_loop *loop, uint64_t seed);
void bkc_fake_free(struct bkc_fake *f);
/* Add a bookie named id ("host:port", as registered); returns its index (0, 1, ...). */
int bkc_fake_add_bookie(struct bkc_fake *f, const char *id);
int bkc_fake_n_bookies(const struct bkc_fake *f);
const char *bkc_fake_bookie_id(const struct bkc_fake *f, int i);
/* The index of the bookie named id, or -1. */
int bkc_fake_bookie_index(const struct bkc_fake *f, const char *id);
const struct bkc_transport *bkc_fake_transport(struct bkc_fake *f);

/* Faults per request: the filter sees each request when it is sent and may change its fate
 * (the action starts as the random faults chose: PASS, no delay). */
enum bkc_fake_verdict {
    BKC_FAKE_PASS = 0,    /* the bookie applies it and answers */
    BKC_FAKE_DROP,        /* the request is lost: never applied, never answered (timeout) */
    BKC_FAKE_LOSE_ANSWER, /* applied (and made durable), the answer is lost (timeout) */
    BKC_FAKE_ERROR,       /* not applied; answered with rc (a BookKeeper response code) */
};
struct bkc_fake_req {
    int bookie; /* index */
    bool add;   /* else a read */
    int64_t ledger, entry;
    bool fence, recovery; /* fencing read; recovery add */
};
struct bkc_fake_action {
    enum bkc_fake_verdict verdict;
    int rc;       /* BKC_FAKE_ERROR: 0 EOK, 1 ENOLEDGER, 2 ENOENTRY, 101 EIO, 104 EFENCED, ... */
    int delay_ms; /* extra delay of the answer (reorders answers) */
    bool corrupt; /* a read's answer has a byte flipped */
};
typedef void (*bkc_fake_filter)(void *arg, const struct bkc_fake_req *r, struct bkc_fake_action *a);
void bkc_fake_set_filter(struct bkc_fake *f, bkc_fake_filter fn, void *arg);
/* Random faults per request, drawn from the seed (per mille; NULL: none). Errors are the
 * ones a healthy cluster gives (EIO, ETOOMANYREQUESTS, EREADONLY), never a false EFENCED or
 * a false "no such entry". */
struct bkc_fake_random {
    int drop_permille, lose_answer_permille, error_permille, delay_permille;
    int max_delay_ms; /* delays are 1..max_delay_ms [50] */
};
void bkc_fake_set_random(struct bkc_fake *f, const struct bkc_fake_random *r);
/* Network latency each way (and journal sync time) of bookie i (< 0: all), drawn uniformly
 * in [min_ms, max_ms] per message [1, 3]. */
void bkc_fake_set_latency(struct bkc_fake *f, int i, int min_ms, int max_ms);
/* Crash bookie i: requests in flight to it fail with -MG_EIO, new ones are refused until
 * bkc_fake_restart; what it applied but had not made durable (answered) is lost, each item
 * with probability 1/2. */
void bkc_fake_crash(struct bkc_fake *f, int i);
void bkc_fake_restart(struct bkc_fake *f, int i);
/* Partition bookie i (on) or heal it: requests and answers are silently lost meanwhile. */
void bkc_fake_partition(struct bkc_fake *f, int i, bool on);
/* Bookie i answers adds with EREADONLY (its disk is full). */
void bkc_fake_set_read_only(struct bkc_fake *f, int i, bool on);
bool bkc_fake_is_up(const struct bkc_fake *f, int i);

/* Inspection (what bookie i stores now). */
bool bkc_fake_has_entry(const struct bkc_fake *f, int i, int64_t ledger, int64_t entry);
int64_t bkc_fake_count_entries(const struct bkc_fake *f, int i, int64_t ledger);
bool bkc_fake_is_fenced(const struct bkc_fake *f, int i, int64_t ledger);
/* Flip a byte of the stored copy (its digest no longer matches). */
void bkc_fake_corrupt_entry(struct bkc_fake *f, int i, int64_t ledger, int64_t entry);
struct bkc_fake_stats {
    int64_t adds, recovery_adds, reads, fence_reads; /* requests that reached the bookie */
};
void bkc_fake_get_stats(const struct bkc_fake *f, int i, struct bkc_fake_stats *out);

/* ---- metadata helpers (exported for tools and tests) ----------------------------------- */

/* The hierarchical metadata path of ledger id under root ("/ledgers"): id 42 ->
 * "/ledgers/00/0000/L0042"; ids >= 2^31-1 use the 3/4/4/4/4 split. Returns a new string. */
char *bkc_ledger_path(const char *root, int64_t id);
/* A ledger metadata node's value (format v3 or v2) as BookKeeper's shell prints it:
 * "LedgerMetadata{formatVersion=3, ensembleSize=.., ..., ensembles={0=[a, b]},
 * customMetadata={k=base64:..}}". A new string (mg_free), or NULL when it does not decode. */
char *bkc_md_describe(const void *buf, size_t len);

#endif
