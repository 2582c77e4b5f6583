'use strict';
// pulsar-flex 1.1.1 arms a 10 s response timer for every request and never clears it. This
// replaces its ResponseMediator.response with one that clears the timer on resolution and
// unrefs it (nothing on the wire changes), so that a process exits as soon as its clients
// are closed instead of 10 s later. Required by lib/flex.js (node:test files) and
// lib/verify-util.js (the integration tests' clients) before pulsar-flex itself is loaded;
// the patch applies once per process (module cache).

const ResponseMediator = require('pulsar-flex/src/responseMediators/abstract/responseMediator');
const flexErrors = require('pulsar-flex/src/errors');
ResponseMediator.prototype.response = function response({ data, autoResolve }) {
  const id = this._idFunc(this._parseCommand(data));
  return new Promise((resolve, reject) => {
    if (autoResolve) resolve();
    const timer = setTimeout(
      () => reject(new flexErrors.PulsarFlexResponseTimeoutError({ id })),
      this._timeout
    );
    timer.unref();
    this._requests[id] = {
      resolve: (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      reject: (e) => {
        clearTimeout(timer);
        reject(e);
      },
    };
  });
};
