"""The model layer: every model loaded once per process (pool), causal LMs, encoders, seq2seq, the prompt protocol."""
