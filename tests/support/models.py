"""Tiny random models built in the test, offline: a llama over SmolLM2's real tokenizer (the
readers, scorers and proxies), a T5 with a word-level tokenizer (no T5 weights ship offline), a BERT
dual encoder with MiniLM's tokenizer, and 2-label token classifiers of each pruner architecture (BERT
with MiniLM's real tokenizer; DeBERTa-v2 and XLM-R with small Unigram tokenizers built here)."""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

# The words the pruner tests' passages use: their tokenizers hold them whole.
PRUNER_TEXTS = [
    "Paris is the capital of France. It has many museums. The river Seine flows through it. France",
    "Dogs bark loudly at night. Many dogs like bones. Puppies sleep a lot. Dogs",
    "The Moon orbits the Earth in 27 days. Mars is red. Jupiter is the largest planet. Space",
    "What is the capital of France? Which planet",
]


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


def tiny_bert_encoder(folder: Path, seed: int = 0) -> str:
    """A seeded random 2-layer BertModel with all-MiniLM-L6-v2's tokenizer (bert-base-uncased's
    vocabulary, as Contriever's and so RECOMP's extractive compressors'), saved to `folder`."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    from pcbench.core.local_models import resolve

    tokenizer = AutoTokenizer.from_pretrained(resolve("minilm"))
    torch.manual_seed(seed)
    config = BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=512)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return str(folder)


def unigram_vocab(specials: list[str]) -> list[tuple[str, float]]:
    """A small Unigram vocabulary: the words of the pruner tests' texts, then single characters (so
    any text still tokenises)."""
    words = sorted({w.strip(string.punctuation).lower() for t in PRUNER_TEXTS for w in t.split()} - {""})
    chars = string.ascii_letters + string.digits + string.punctuation
    return ([(s, 0.0) for s in specials] + [("▁" + w, -2.0) for w in words] + [("▁", -3.0)]
            + [(c, -5.0) for c in chars] + [("▁" + c, -6.0) for c in chars])


def pruner_tokenizer(arch: str) -> Any:
    if arch == "bert":
        from transformers import AutoTokenizer

        from pcbench.core.local_models import resolve

        return AutoTokenizer.from_pretrained(resolve("minilm"))  # the real MiniLM (BERT) tokenizer
    if arch == "deberta":
        from transformers import DebertaV2TokenizerFast

        return DebertaV2TokenizerFast(vocab=unigram_vocab(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]), unk_id=1,
                                      do_lower_case=True)
    from transformers import XLMRobertaTokenizerFast

    return XLMRobertaTokenizerFast(vocab=unigram_vocab(["<s>", "<pad>", "</s>", "<unk>", "<mask>"]))


def tiny_config(arch: str, vocab: int, **extra: Any) -> Any:
    from transformers import BertConfig, DebertaV2Config, XLMRobertaConfig

    common = dict(vocab_size=vocab, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=64, **extra)
    if arch == "bert":
        return BertConfig(**common)
    if arch == "deberta":
        return DebertaV2Config(max_position_embeddings=512, relative_attention=True, position_buckets=32,
                               pos_att_type=["p2c", "c2p"], position_biased_input=False, type_vocab_size=0,
                               norm_rel_ebd="layer_norm", **common)
    return XLMRobertaConfig(max_position_embeddings=514, pad_token_id=1, **common)


def token_classifier(folder: Path, arch: str, ranking: bool = True, seed: int = 0, keep_bias: float | None = None
                     ) -> Path:
    """A tiny random 2-label token classifier (+ ranking head) saved with its tokenizer."""
    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForTokenClassification

    from pcbench.models.encoders import RANKING_FILE, ranking_head

    tok = pruner_tokenizer(arch)
    torch.manual_seed(seed)
    model = AutoModelForTokenClassification.from_config(tiny_config(arch, len(tok), num_labels=2))
    if keep_bias is not None:  # every token gets keep probability sigmoid(keep_bias)
        with torch.no_grad():
            model.classifier.weight.zero_()
            model.classifier.bias.copy_(torch.tensor([0.0, keep_bias]))
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    if ranking:
        save_file(ranking_head(32, 32, "gelu").state_dict(), str(folder / RANKING_FILE))
    return folder


def modernbert_tokenizer() -> Any:
    """A byte-level BPE tokenizer of ModernBERT's kind (SmolLM2's vocabulary and merges, as ModernBERT's
    are GPT-NeoX's) with ModernBERT's special tokens and its [CLS] a [SEP] b [SEP] template."""
    import json

    from tokenizers import Tokenizer
    from tokenizers.processors import TemplateProcessing
    from transformers import AutoTokenizer, PreTrainedTokenizerFast

    from pcbench.core.local_models import resolve

    base = AutoTokenizer.from_pretrained(resolve("smollm2"))
    core = Tokenizer.from_str(json.dumps(json.loads(base.backend_tokenizer.to_str())))
    specials = ["[UNK]", "[CLS]", "[SEP]", "[PAD]", "[MASK]"]
    core.add_special_tokens(specials)
    ids = {t: core.token_to_id(t) for t in specials}
    core.post_processor = TemplateProcessing(single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
                                             special_tokens=[("[CLS]", ids["[CLS]"]), ("[SEP]", ids["[SEP]"])])
    return PreTrainedTokenizerFast(tokenizer_object=core, unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]",
                                   pad_token="[PAD]", mask_token="[MASK]",
                                   model_input_names=["input_ids", "attention_mask"])


def tiny_modernbert_config(tokenizer: Any, **extra: Any) -> Any:
    from transformers import ModernBertConfig

    return ModernBertConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                            num_attention_heads=2, max_position_embeddings=512, global_attn_every_n_layers=1,
                            pad_token_id=tokenizer.pad_token_id, cls_token_id=tokenizer.cls_token_id,
                            sep_token_id=tokenizer.sep_token_id, bos_token_id=tokenizer.cls_token_id,
                            eos_token_id=tokenizer.sep_token_id, **extra)


def tiny_open_provence(folder: Path, seed: int = 0, keep_bias: float | None = None) -> str:
    """A seeded random checkpoint in OpenProvence's layout (hotchpotch/open_provence's
    `OpenProvenceModel.save_pretrained`): config.json of model type "open_provence" carrying its
    ModernBERT backbone's config, weights `ranking_model.*` (a one-label sequence classifier) and
    `pruning_head.classifier.*` (keep/drop per token). No modeling file: pcbench reads it natively."""
    import json

    import torch
    from safetensors.torch import save_file
    from transformers import AutoModelForSequenceClassification

    tokenizer = modernbert_tokenizer()
    backbone = tiny_modernbert_config(tokenizer, num_labels=1)
    torch.manual_seed(seed)
    ranking = AutoModelForSequenceClassification.from_config(backbone)
    head = torch.nn.Linear(32, 2)
    if keep_bias is not None:  # every token: keep probability sigmoid(keep_bias)
        with torch.no_grad():
            head.weight.zero_()
            head.bias.copy_(torch.tensor([0.0, keep_bias]))
    state = {f"ranking_model.{k}": v.contiguous() for k, v in ranking.state_dict().items()}
    state.update({f"pruning_head.classifier.{k}": v.contiguous() for k, v in head.state_dict().items()})
    folder.mkdir(parents=True, exist_ok=True)
    save_file(state, str(folder / "model.safetensors"))
    config = {"model_type": "open_provence", "architectures": ["OpenProvenceModel"], "mode": "reranking_pruning",
              "base_model_config": backbone.to_dict(), "pruning_config": {"hidden_size": 32, "num_labels": 2},
              "max_length": 512, "num_labels": 1, "num_pruning_labels": 2}
    (folder / "config.json").write_text(json.dumps(config))
    tokenizer.save_pretrained(folder)
    return str(folder)


def tiny_pisco(folder: Path, decoder: str, rate: int = 16, seed: int = 0, sep: bool = True) -> str:
    """A PISCO checkpoint in naver's COCOM layout over the tiny llama `decoder`, with random LoRA
    adapters: config.json (model type COCOM), adapters.pth ({encoder_adapter, decoder_adapter}, as
    transformers' get_adapter_state_dict gives them) and decoder_first_last_layers.pth (the rows the
    added memory tokens grow), as COCOM.save_pretrained writes them."""
    import json

    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM

    from pcbench.models.soft import MemorySettings, memory_tokenizer

    settings = MemorySettings(decoder, 128, rate, 4, sep, True, False)
    tokenizer = memory_tokenizer(decoder, settings)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(decoder)
    model.resize_token_embeddings(len(tokenizer))
    with torch.no_grad():  # the added tokens' rows, trained in PISCO: random here, saved like its own
        model.get_input_embeddings().weight[-8 - settings.memory_tokens:].normal_(0, 0.02)
    lora = LoraConfig(task_type="CAUSAL_LM", r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=0.1)
    adapters = {}
    for name in ("decoder_adapter", "encoder_adapter"):
        model.add_adapter(lora, name)
        state = model.get_adapter_state_dict(name)
        adapters[name] = {k: (torch.randn_like(v) * 0.05 if "lora_B" in k else v).contiguous()
                          for k, v in state.items() if "lora_" in k}  # the adapter's own weights
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(adapters, folder / "adapters.pth")
    layers = {k: v.detach().clone() for k, v in model.state_dict().items()
              if k.endswith("embed_tokens.weight") or k.endswith("lm_head.weight")}
    torch.save({k.replace("base_model.model.", ""): v for k, v in layers.items()},
               folder / "decoder_first_last_layers.pth")
    config = {"model_type": "COCOM", "decoder_model_name": decoder, "doc_max_length": 128, "compr_rate": rate,
              "compr_model_name": None, "lora": True, "lora_r": 4, "training_form": "both_separately", "sep": sep,
              "different_mem_tokens": True, "kbtc_training": False, "quantization": "no",
              "attn_implementation": "sdpa"}
    (folder / "config.json").write_text(json.dumps(config))
    return str(folder)
