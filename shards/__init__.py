"""The data contract: every pipeline ends in these shards, every trainer starts from them.

A shard is a POSIX tar `{dataset}-{split}-{index:06d}.tar` of `KEY.flac` + `KEY.json` pairs
(docs/architecture.md, "The shard contract"); each dataset split has a Parquet index beside its shards.
"""
