/*
 * nats_common.h - what the NATS JetStream drivers of scripts/bench/ share (header only,
 * Debian's libnats-dev): connect to 127.0.0.1:PORT with JetStream options, and create (or
 * reuse) the file-storage stream --stream (bench) on subject --subject (bench) that the run
 * writes to. Errors print one line and return false.
 */
#ifndef NATS_COMMON_H
#define NATS_COMMON_H

#include "bench_common.h"

#include <nats/nats.h>
#include <stdbool.h>
#include <stdio.h>

struct bc_js {
    natsConnection *nc;
    jsCtx *js;
    const char *stream, *subject; /* borrowed: argv or literals */
};

static inline bool bc_js_open(const char *who, int argc, char **argv, const struct bc_args *a,
                              jsOptions *jo, struct bc_js *j)
{
    char url[64];
    snprintf(url, sizeof url, "nats://127.0.0.1:%d", a->port);
    j->stream = a->stream;
    j->subject = bc_opt(argc, argv, "--subject", "bench");
    natsConnection **nc = &j->nc;
    jsCtx **js = &j->js;
    natsStatus s = natsConnection_ConnectTo(nc, url);
    if (s != NATS_OK) {
        fprintf(stderr, "%s: connect %s: %s\n", who, url, natsStatus_GetText(s));
        return false;
    }
    if ((s = natsConnection_JetStream(js, *nc, jo)) != NATS_OK) {
        fprintf(stderr, "%s: JetStream: %s\n", who, natsStatus_GetText(s));
        return false;
    }
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    sc.Name = j->stream;
    const char *subjects[] = {j->subject};
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    s = js_AddStream(&si, *js, &sc, NULL, &jerr);
    if (s != NATS_OK && jerr != JSStreamNameExistErr) {
        fprintf(stderr, "%s: add stream: %s (%d)\n", who, natsStatus_GetText(s), (int)jerr);
        return false;
    }
    jsStreamInfo_Destroy(si);
    return true;
}

#endif
