"""The Redis connection settings test_cache.py drives (host/test_cache.py), also rows of docs/bad-inputs.md."""

from __future__ import annotations

# (id, the RedisConnectionString app setting, what the log says): also rows of docs/bad-inputs.md.
BAD_CONNECTIONS = [
    ("empty", "", "cache: app setting RedisConnectionString is not set: predictions are not cached"),
    ("bad-scheme", "ftp://cache.example", "cache: app setting RedisConnectionString is not a usable Redis "
     "connection string: the URL scheme 'ftp' is not redis:// or rediss://"),
    ("bad-port", "cache.example:70000,password=x", "cache: app setting RedisConnectionString is not a usable "
     "Redis connection string: the port '70000' is not a number from 1 to 65535"),
    ("bad-ssl", "cache.example:6380,ssl=maybe", "cache: app setting RedisConnectionString is not a usable Redis "
     "connection string: ssl='maybe' is neither True nor False"),
    ("password-without-name", "cache.example:6380,s3cretWithoutName", "cache: app setting RedisConnectionString "
     "is not a usable Redis connection string: part 2 (after comma 1) is not name=value"),
]
