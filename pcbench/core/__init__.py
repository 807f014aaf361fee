"""The shared vocabulary: examples, reader requests, the tokenizer protocol, errors, sentence splitting.

Every other package may import it; it imports nothing of the project, so layers point one way:
run.py -> runners -> compressors, tasks, readers -> core.
"""
