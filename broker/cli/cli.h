/*
 * cli.h - the command-line tools: `magnetar admin` (pulsar-admin's command tree over the
 * admin REST API) and `magnetar client` (pulsar-client's produce, consume and read over
 * the client module).
 *
 * Both take argv starting at their own name ("admin", "client") and return the process's
 * exit status: 0, 1 when the server or the connection failed (one line on stderr: Pulsar's
 * "reason" when the server gave one), 2 for a usage error (one line naming the flag or
 * argument). --help at any level prints that level's usage on stdout and returns 0.
 */
#ifndef MG_CLI_H
#define MG_CLI_H

int cli_admin_main(int argc, char **argv);
int cli_client_main(int argc, char **argv);

#endif
