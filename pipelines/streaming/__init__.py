"""Simulated streaming data (Fun-ASR section 5.1): an utterance becomes a series of chunked inputs
that expose only past audio, each labelled with the partial transcript that the visible audio
supports, timed by a real word aligner (faster-whisper word timestamps).

`funfactory pipeline streaming IN OUT` runs it as a Beam job.
"""
