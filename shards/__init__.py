"""funfactory.shards"""
