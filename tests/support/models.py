"""Tiny random models built in the test, offline: a llama over SmolLM2's real tokenizer (the
readers, scorers and proxies), and a T5 with a word-level tokenizer (no T5 weights ship offline)."""

from __future__ import annotations

from pathlib import Path


def tiny_llama(folder: Path, layers: int = 3, window: int = 256, head_dim: int | None = None,
               newline_lover: bool = False, pad: bool = False) -> str:
    """A seeded random llama (hidden 32, 4 heads, 2 KV heads) with SmolLM2's tokenizer, saved to `folder`.

    head_dim: wider heads than hidden/heads (head-wise KV presses need room for their hidden key);
    newline_lover: "\n" is always the argmax and the old top token the runner-up (what LongBench's
    min_new_tokens=1 forces first); pad: the config names eos as its pad token."""
    import torch
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from pcbench.core.local_models import resolve

    tokenizer = AutoTokenizer.from_pretrained(resolve("smollm2"))
    torch.manual_seed(0)
    config = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=layers, num_attention_heads=4,
                         num_key_value_heads=2, vocab_size=len(tokenizer), max_position_embeddings=window,
                         tie_word_embeddings=False, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id,
                         **({"pad_token_id": tokenizer.eos_token_id} if pad else {}),
                         **({"head_dim": head_dim} if head_dim else {}))
    model = LlamaForCausalLM(config)
    if newline_lover:
        # Identical token embeddings make every position's hidden state the same vector, hence the
        # same logits; pointing the newline row along the top row then makes "\n" the argmax always.
        newline = tokenizer.encode("\n", add_special_tokens=False)[-1]
        with torch.no_grad():
            model.model.embed_tokens.weight[:] = model.model.embed_tokens.weight[0].clone()
            logits = model(torch.tensor([[5, 6]])).logits[0, -1]
            model.lm_head.weight[newline] = 2 * model.lm_head.weight[int(logits.argmax())]
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def tiny_t5(path: Path) -> str:
    """A seeded random 2-layer T5 with a word-level tokenizer built here (no T5 weights ship offline)."""
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast, T5Config, T5ForConditionalGeneration

    words = "question document answer the a of is in to what who where when paris city tower was built".split()
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2, **{w: i + 3 for i, w in enumerate(words)}}
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Whitespace()
    from tokenizers.processors import TemplateProcessing

    core.post_processor = TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, pad_token="<pad>", eos_token="</s>",
                                        unk_token="<unk>")
    torch.manual_seed(0)
    config = T5Config(vocab_size=len(vocab), d_model=16, d_kv=4, d_ff=32, num_layers=2, num_heads=2,
                      decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    T5ForConditionalGeneration(config).save_pretrained(path)
    tokenizer.save_pretrained(path)
    return str(path)
