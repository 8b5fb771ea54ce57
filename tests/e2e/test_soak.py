"""The soak test, short (issue 15): tests/e2e/soak.py for PORTCULLIS_SOAK_SECONDS
(default 60) — mixed traffic through the PostHog example while upstream servers,
Redis and the IdP metadata server are killed and restarted, the configuration is
reloaded every few seconds and the certificate files are swapped.  No failure a
correct proxy could have avoided, no sanitizer report, no growth of descriptors
or RSS.  scripts/soak.sh MINUTES runs the same driver for longer."""

import os

import soak


def test_soak(tmp_path):
    seconds = int(os.environ.get("PORTCULLIS_SOAK_SECONDS", "60"))
    problems, counts, figures = soak.run(seconds, str(tmp_path))
    print(soak.report(counts, figures, seconds))
    assert not problems, "\n".join(problems)
