"""The index builder: a celebrity catalogue and their photos in, a published index version out.

    python -m index_builder build --catalog FILE --photos DIR|gs://... --out DIR|gs://...
    python -m index_builder versions --out URI
    python -m index_builder activate --out URI VERSION

See docs/index_builder.md for the design and the figures behind its defaults.
"""
