"""moto's own server (`python -m moto.server`), with one change: the lookup
from a request's host to a moto backend is cached.

moto answers every S3 request by asking `get_backend_for_host` which backend
owns the host, and that lists moto's package directory (about 200 `isdir`
calls) each time. The answer depends only on the host, which never changes
for the life of the server, so caching it changes no behaviour. py-spy put a
quarter of moto's time per PUT there; the cache takes a 4 KiB PUT through
aws-sdk-s3 from a p50 of about 7.7 ms to about 5 ms on the 2-core VM
(BENCHMARKS.md).

Arguments are moto.server's: -H HOST -p PORT.
"""

import functools

import moto.server
from moto.moto_server.werkzeug_app import DomainDispatcherApplication


class CachedHostDispatcher(DomainDispatcherApplication):
    # The cache keeps `self` alive, which is what we want: the server has one
    # dispatcher for its whole life.
    @functools.lru_cache(maxsize=None)
    def get_backend_for_host(self, host):
        return super().get_backend_for_host(host)


if __name__ == "__main__":
    moto.server.DomainDispatcherApplication = CachedHostDispatcher
    moto.server.main()
