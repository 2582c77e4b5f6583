'use strict';
// What the tests read about a process from /proc.

const fs = require('node:fs');

// VmRSS of process pid in kB, or null if unknown (no pid, no such process).
function rssKb(pid) {
  if (!pid) return null;
  try {
    const m = /VmRSS:\s+(\d+)\s*kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

module.exports = { rssKb };
