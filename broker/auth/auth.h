/*
 * auth.h - authentication as Pulsar does it: the token provider (JSON Web Tokens signed
 * with HS256/384/512, RS256/384/512, PS256/384/512 or ES256/384/512), configured with
 * Pulsar's own keys (authenticationEnabled, authenticationProviders, tokenSecretKey,
 * tokenPublicKey, tokenPublicAlg, tokenAuthClaim, tokenAudienceClaim, tokenAudience,
 * authenticationRefreshCheckSeconds, authenticateMetricsEndpoint, superUserRoles), and the
 * TLS provider (a verified client certificate's CN is the role, as Pulsar's
 * AuthenticationProviderTls), and the pieces `magnetar tokens` needs to make keys and tokens that
 * Pulsar's brokers accept.
 *
 * The crypto is OpenSSL's (HMAC, EVP_DigestVerify/Sign, ECDSA_SIG for the JOSE r||s
 * form); JSON is jansson's. Nothing here does I/O except reading key files at auth_new
 * (and in the auth_key_* helpers), so the checks can run on the loop thread: a check is
 * bounded by AUTH_TOKEN_MAX bytes and one signature verification.
 *
 * Threading: a struct auth is read-only after auth_new and may be shared by every thread.
 */
#ifndef MG_AUTH_H
#define MG_AUTH_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct auth;
struct cfg;

/* Longest credential looked at: a longer one is refused before any decoding. Pulsar's
 * tokens are a few hundred bytes. */
#define AUTH_TOKEN_MAX (16 * 1024)

/* The wire name of the token method (CONNECT's auth_method_name). */
#define AUTH_METHOD_TOKEN "token"

/* Pulsar's provider class name of the token method (authenticationProviders). */
#define AUTH_PROVIDER_TOKEN "org.apache.pulsar.broker.authentication.AuthenticationProviderToken"

/* The wire name of the TLS method, and Pulsar's provider class name of it. */
#define AUTH_METHOD_TLS "tls"
#define AUTH_PROVIDER_TLS "org.apache.pulsar.broker.authentication.AuthenticationProviderTls"

struct x509_st; /* OpenSSL's X509 */

/* Who a credential says the client is. */
struct auth_id {
    char *role;     /* owned; never NULL after a successful check */
    int64_t exp_ms; /* when the credential expires (wall clock, ms); 0 = never */
};

/*
 * Build the authentication of a broker from c (borrowed only during the call). Reads the
 * key files. With authenticationEnabled=false the result says so (auth_enabled false) and
 * no key is read, but authenticationProviders must still name known providers.
 * Returns 0 and *out (free with auth_free), or -MG_EINVAL with err naming the key and the
 * configuration file (c->file, or "configuration" when there is none): an unknown
 * provider, enabled without a provider, a token provider without a key, an unreadable or
 * unusable key, a tokenPublicAlg that does not fit the key, one of the audience keys
 * without the other.
 */
int auth_new(const struct cfg *c, struct auth **out, char *err, size_t errlen);
/* Accepts NULL. */
void auth_free(struct auth *a);

/* Authentication is on (a may be NULL: off). */
bool auth_enabled(const struct auth *a);
/* A broker bound to bind_address (bindAddress) with authentication off is open to whoever
 * reaches it: unless bind_address is a loopback address (127.0.0.0/8, ::1, localhost), log
 * one WARN line naming the keys that close it. Returns whether it warned. */
bool auth_warn_if_open(const struct auth *a, const char *bind_address);
/* authenticationRefreshCheckSeconds, in ms. */
uint64_t auth_refresh_ms(const struct auth *a);
/* /metrics needs a credential (authenticateMetricsEndpoint, with authentication on). */
bool auth_metrics_protected(const struct auth *a);
/* Authorization is on (authorizationEnabled; auth_new refuses it without authentication). */
bool auth_authz_enabled(const struct auth *a);
/* role is one of superUserRoles. */
bool auth_is_super_user(const struct auth *a, const char *role);

/*
 * Check a credential of method (CONNECT's auth_method_name; NULL = none) made of len bytes
 * at data, at wall-clock time now_ms. Only "token" is checked here ("tls" is
 * auth_check_cert's: its credential is the TLS session's). Returns 0 with id filled
 * (auth_id_fini it), or -MG_EAUTH with why (for the log only: clients get Pulsar's fixed
 * message) filled.
 */
int auth_check(const struct auth *a, const char *method, const void *data, size_t len,
               int64_t now_ms, struct auth_id *id, char *why, size_t whylen);
/*
 * The TLS provider: cert is the client certificate of the connection's TLS session (NULL:
 * none, or not a TLS connection), trusted whether it verified against tlsTrustCertsFilePath
 * (one let through by tlsAllowInsecureConnection is not used, as Pulsar). The role is the
 * subject's most specific CN (the first CN= of its RFC 2253 form). Returns 0 with id filled
 * (exp_ms 0), or -MG_EAUTH with why: the provider is not configured, no certificate, not
 * trusted, no usable CN.
 */
int auth_check_cert(const struct auth *a, struct x509_st *cert, bool trusted, struct auth_id *id,
                    char *why, size_t whylen);
/* The TLS provider is configured (authenticationProviders names it, authentication on). */
bool auth_tls_enabled(const struct auth *a);
/* The same for an HTTP Authorization header's value ("Bearer <token>"; NULL = missing). */
int auth_check_http(const struct auth *a, const char *authorization, int64_t now_ms,
                    struct auth_id *id, char *why, size_t whylen);
/* ---- client credentials (brokerClientAuthenticationPlugin, magnetar perf) ------------ */

/* Pulsar's client plugin class of tokens (or its short name "token"). */
#define AUTH_CLIENT_TOKEN "org.apache.pulsar.client.impl.auth.AuthenticationToken"
/* Pulsar's client plugin class of TLS certificates (or its short name "tls"). */
#define AUTH_CLIENT_TLS "org.apache.pulsar.client.impl.auth.AuthenticationTls"

/*
 * The token a client plugin and its parameters stand for, as Pulsar's clients read them
 * (brokerClientAuthentication*, and the --auth-plugin/--auth-params of magnetar admin,
 * client and perf): plugin AUTH_CLIENT_TOKEN or "token"; params "token:<jwt>",
 * "file:///path" (the file's text, surrounding blanks dropped) or {"token":"<jwt>"}.
 * Neither given: 0 with *token NULL. Returns 0 with *token (mg_free), -MG_ENOTSUP when the
 * plugin is another one (*token NULL, err names it), or -MG_EINVAL for parameters that do
 * not give a one-line token (err says why, without the caller's key or flag names).
 */
int auth_client_token(const char *plugin, const char *params, char **token, char *err,
                      size_t errlen);
/* The Authorization header value ("Bearer <token>") of brokerClientAuthenticationPlugin and
 * brokerClientAuthenticationParameters (read by auth_new), or NULL when they are not set. */
const char *auth_broker_client_authorization(const struct auth *a);

/* Free what id owns and zero it. Accepts a zeroed id. */
void auth_id_fini(struct auth_id *id);

/* ---- authorization (auth_authz.c): grants as Pulsar's AuthPolicies --------------------- */

/* Pulsar's AuthAction values, as bits. */
#define AUTH_PRODUCE (1u << 0)
#define AUTH_CONSUME (1u << 1)
/* An action's bit ("produce", "consume", "functions", "sources", "sinks", "packages"), or
 * -MG_EINVAL. */
int auth_action_parse(const char *name);
/* A JSON array of the names of actions (new reference), in Pulsar's order. */
json_t *auth_actions_json(unsigned actions);
/* A JSON array of action names into bits: 0, or -MG_EINVAL (not an array, unknown name). */
int auth_actions_parse(const json_t *arr, unsigned *out);
/* The actions auth_policies (a namespace's Policies.auth_policies; NULL: none) grant role
 * on topic (a full name; NULL: the namespace's own grants only): namespace_auth joined with
 * destination_auth of the topic and, for a partition, of its partitioned topic. */
unsigned auth_granted(const json_t *auth_policies, const char *role, const char *topic);

/* ---- keys and tokens (magnetar tokens, tests) ------------------------------------------- */

/*
 * The bytes a key value stands for, as Pulsar reads them: "data:[...][;base64],x" (x
 * decoded when ;base64), "file:///path" or "file:path" (the file's bytes, at most 1 MiB),
 * the path of an existing file (its bytes), else bare base64 (decoded). Returns 0 with
 * *key (mg_free it) and *len, or -MG_EINVAL with err filled.
 */
int auth_key_read(const char *value, unsigned char **key, size_t *len, char *err, size_t errlen);

/* A new random secret key for alg (HS256: 32 bytes, HS384: 48, HS512: 64). Returns 0 with
 * *key (mg_free it) and *len, or -MG_EINVAL for an alg that is not HS*. */
int auth_secret_key_new(const char *alg, unsigned char **key, size_t *len);

/* A new key pair for alg (RS*, PS*: RSA 2048; ES256/384/512: P-256/P-384/P-521), as DER:
 * PKCS#8 private key and X.509 SubjectPublicKeyInfo public key, as `pulsar tokens
 * create-key-pair` writes them. Returns 0 (mg_free both buffers) or -MG_EINVAL. */
int auth_key_pair_new(const char *alg, unsigned char **priv, size_t *priv_len, unsigned char **pub,
                      size_t *pub_len, char *err, size_t errlen);

/*
 * A signed token {"sub": subject[, "exp": exp_s]} (exp_s 0 = no exp) with header
 * {"alg": alg}. key is the secret (HS*) or a private key (DER PKCS#8, or PEM) of len
 * bytes. Returns 0 with *token (mg_free it), or -MG_EINVAL with err filled (an unknown
 * alg, a key that does not fit it).
 */
int auth_token_sign(const char *alg, const unsigned char *key, size_t len, const char *subject,
                    int64_t exp_s, char **token, char *err, size_t errlen);

/*
 * Decode a token without checking its signature (`tokens show`): *header and *payload are
 * its two JSON parts as text (mg_free both). Returns 0, or -MG_EAUTH with err filled.
 */
int auth_token_decode(const char *token, char **header, char **payload, char *err, size_t errlen);

/* `magnetar tokens <command> ...`: argv[0] is "tokens". Returns the exit status. */
int auth_tokens_main(int argc, char **argv);

#endif
