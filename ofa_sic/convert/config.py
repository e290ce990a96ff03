"""ofa_sic model options <-> the `config.json` of the Hugging Face OFA port and ModelScope's `OFAConfig`.

Export (`hf_config_from_args`) and import (`model_args_from_hf_config`) refuse, with a message saying
why, whatever the other side cannot express exactly: OFA-main's entangled decoder positions, separate
`--scale-attn`/`--scale-fc` (the ports have one `normformer` switch), `--scale-resids`, `--sync-bn`
(eps 1e-3), different source and target position limits; and, on import, the ports' features ofa_sic
does not have (ViT backbones, shared attention bias, entangled encoder positions, ...).
"""
from argparse import Namespace
from typing import Dict, List, Tuple

from ofa_sic.convert.report import ConversionRefused, Report

#: The ports' OFAConfig defaults for the fields ofa_sic reads (the HF port's `configuration_ofa.py`
#: and ModelScope 1.40's have the same values); used, and reported, when a config.json omits a field.
PORT_DEFAULTS = {
    "vocab_size": 59457, "max_position_embeddings": 1024, "d_model": 512,
    "encoder_layers": 4, "decoder_layers": 4, "encoder_ffn_dim": 2048, "decoder_ffn_dim": 2048,
    "encoder_attention_heads": 8, "decoder_attention_heads": 8, "activation_function": "gelu",
    "dropout": 0.1, "attention_dropout": 0.0, "activation_dropout": 0.0,
    "encoder_layerdrop": 0.0, "decoder_layerdrop": 0.0, "scale_embedding": False,
    "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2,
    "encoder_normalize_before": True, "decoder_normalize_before": True, "normformer": True,
    "encoder_drop_path_rate": 0.0, "decoder_drop_path_rate": 0.0, "resnet_drop_path_rate": 0.0,
    "layernorm_embedding": True, "patch_layernorm_embedding": True, "code_layernorm_embedding": True,
    "resnet_type": "resnet101", "token_bucket_size": 256, "image_bucket_size": 42,
    "add_type_embedding": True, "share_decoder_input_output_embed": True, "attn_scale_factor": 2.0,
    "code_image_size": 128, "entangle_position_embedding": False,
}

#: ModelScope-only switches and the value ofa_sic's model corresponds to; another value is refused.
MODELSCOPE_FEATURES = {
    "use_ofasys": (False, "a ViT image backbone (OFA-Sys's OFASys models)"),
    "use_image_feature": (True, "a text-only OFA without the ResNet"),
    "share_attn_bias": (False, "one relative-position table shared by all layers"),
    "interpolate_position": (False, "interpolated image position embeddings"),
    "use_gamma_feature": (False, "layer-scale gammas"),
    "remove_decoder_type_embedding": (False, "a decoder without type embedding"),
}

#: fairseq activation name -> HF ACT2FN name (the same function).
ACTIVATIONS = {"gelu": "gelu", "gelu_accurate": "gelu_new", "relu": "relu", "tanh": "tanh"}

#: ResNet depths both ports build (always Bottleneck blocks, as ofa_sic).
RESNET_TYPES = ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152")


def _refuse(reason: str) -> None:
    raise ConversionRefused(reason)


def hf_config_from_args(args: Namespace, vocab_size: int, target: str, report: Report) -> Dict:
    """The config.json of the HF port / ModelScope for an ofa_sic model with options `args`."""
    get = lambda name, default=None: getattr(args, name, default)  # noqa: E731
    if not get("disable_entangle"):
        _refuse("the model adds absolute positions to the decoder inputs (OFA-main without --disable-entangle); "
                "ModelScope and the HF port can only do that together with the encoder "
                "(entangle_position_embedding), which OFA-main's encoder does not do. Every released OFA "
                "checkpoint uses --disable-entangle; fine-tune with it to export.")
    if bool(get("scale_attn")) != bool(get("scale_fc")):
        _refuse(f"the model has --scale-attn {bool(get('scale_attn'))} but --scale-fc {bool(get('scale_fc'))}; "
                "ModelScope and the HF port have one `normformer` switch for both layer norms, so they cannot "
                "hold this model. Use both flags or neither.")
    if get("scale_resids"):
        _refuse("the model uses --scale-resids (learned residual scales w_resid); ModelScope and the HF port have no such parameter")
    if get("sync_bn"):
        _refuse("the model uses --sync-bn, whose BatchNorm has eps 1e-3; the ResNet of ModelScope and the HF port "
                "uses eps 1e-5, so the image features would differ")
    if get("encoder_embed_dim") != get("decoder_embed_dim"):
        _refuse("encoder and decoder embed dims differ; the ports have one d_model")
    if get("max_source_positions") != get("max_target_positions"):
        _refuse(f"--max-source-positions {get('max_source_positions')} differs from --max-target-positions "
                f"{get('max_target_positions')}; the ports have one max_position_embeddings for both")
    activation = get("activation_fn", "gelu") or "gelu"
    if activation not in ACTIVATIONS:
        _refuse(f"activation {activation!r} has no counterpart in the ports (known: {', '.join(ACTIVATIONS)})")
    if target == "hf" and float(get("attn_scale_factor")) != 2.0:
        _refuse(f"--attn-scale-factor {get('attn_scale_factor')}: the HF port's attention always scales queries "
                "with factor 2 (ModelScope reads the config; use --to modelscope)")
    if not get("scale_heads"):
        report.note("the model has no --scale-heads: wrote c_attn = 1 for every attention (the ports always have it; "
                    "multiplying by 1 changes nothing)")
    config = {
        "model_type": "ofa",
        "architectures": ["OFAModel"],
        "vocab_size": vocab_size,
        "d_model": get("encoder_embed_dim"),
        "encoder_layers": get("encoder_layers"),
        "decoder_layers": get("decoder_layers"),
        "encoder_ffn_dim": get("encoder_ffn_embed_dim"),
        "decoder_ffn_dim": get("decoder_ffn_embed_dim"),
        "encoder_attention_heads": get("encoder_attention_heads"),
        "decoder_attention_heads": get("decoder_attention_heads"),
        "max_position_embeddings": get("max_source_positions"),
        "activation_function": ACTIVATIONS[activation],
        "dropout": float(get("dropout", 0.0) or 0.0),
        "attention_dropout": float(get("attention_dropout", 0.0) or 0.0),
        "activation_dropout": float(get("activation_dropout", 0.0) or 0.0),
        "encoder_layerdrop": 0.0,
        "decoder_layerdrop": 0.0,
        "scale_embedding": not get("no_scale_embedding"),
        "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2, "decoder_start_token_id": 0, "forced_eos_token_id": 2,
        "encoder_normalize_before": bool(get("encoder_normalize_before")),
        "decoder_normalize_before": bool(get("decoder_normalize_before")),
        "normformer": bool(get("scale_attn")),
        "encoder_drop_path_rate": float(get("encoder_drop_path_rate", 0.0)),
        "decoder_drop_path_rate": float(get("decoder_drop_path_rate", 0.0)),
        "resnet_drop_path_rate": float(get("resnet_drop_path_rate", 0.0)),
        "layernorm_embedding": bool(get("layernorm_embedding")),
        "patch_layernorm_embedding": bool(get("patch_layernorm_embedding")),
        "code_layernorm_embedding": bool(get("code_layernorm_embedding")),
        "resnet_type": get("resnet_type"),
        "token_bucket_size": get("token_bucket_size"),
        "image_bucket_size": get("image_bucket_size"),
        "add_type_embedding": bool(get("add_type_embedding")),
        "share_decoder_input_output_embed": True,
        "attn_scale_factor": float(get("attn_scale_factor")),
        "code_image_size": get("code_image_size"),
        "entangle_position_embedding": False,
        "disable_entangle": True,
    }
    if target == "modelscope":
        config.update({name: value for name, (value, _) in MODELSCOPE_FEATURES.items()})
    _warn_drop_path(config, "the export", report)
    return config


def model_args_from_hf_config(config: Dict, source: str, report: Report) -> Dict:
    """ofa_sic model options (fairseq names) for the model of a port's config.json `config`."""
    if config.get("model_type", "ofa") != "ofa":
        _refuse(f"config.json has model_type {config['model_type']!r}; only OFA ('ofa') models convert")
    defaulted = sorted(name for name in PORT_DEFAULTS if name not in config)
    if defaulted:
        report.note(f"config.json omits {', '.join(defaulted)}: used the ports' defaults "
                    f"({', '.join(f'{n}={PORT_DEFAULTS[n]!r}' for n in defaulted)})")
    value = lambda name: config.get(name, PORT_DEFAULTS[name])  # noqa: E731
    for name, (supported, what) in MODELSCOPE_FEATURES.items():
        if name in config and config[name] != supported:
            _refuse(f"config.json sets {name}={config[name]!r}: {what}, which ofa_sic's OFA does not have")
    if value("entangle_position_embedding"):
        _refuse("config.json sets entangle_position_embedding=true: positions are added to the encoder inputs, "
                "which OFA-main's encoder (and so ofa_sic) never does")
    if not value("share_decoder_input_output_embed"):
        _refuse("config.json sets share_decoder_input_output_embed=false; OFA (and ofa_sic) ties the output projection to the token embedding")
    for side in ("encoder", "decoder"):
        if value(f"{side}_layerdrop"):
            _refuse(f"config.json sets {side}_layerdrop={value(f'{side}_layerdrop')}; ofa_sic has no LayerDrop")
    if value("resnet_type") not in RESNET_TYPES:
        _refuse(f"config.json has resnet_type {value('resnet_type')!r}; known: {', '.join(RESNET_TYPES)}")
    activations = {hf: fairseq for fairseq, hf in ACTIVATIONS.items()}
    if value("activation_function") not in activations:
        _refuse(f"activation_function {value('activation_function')!r} has no fairseq counterpart (known: {', '.join(activations)})")
    if source == "hf" and float(value("attn_scale_factor")) != 2.0:
        _refuse(f"attn_scale_factor {value('attn_scale_factor')}: the HF port scales attention queries with 2 but "
                "position queries with this factor; ofa_sic uses one factor for both")
    for name, expected in (("pad_token_id", 1), ("bos_token_id", 0), ("eos_token_id", 2)):
        if value(name) != expected:
            _refuse(f"config.json has {name}={value(name)}; OFA's fairseq dictionary has {expected} there")
    normformer = bool(value("normformer"))
    args = {
        "encoder_embed_dim": value("d_model"), "decoder_embed_dim": value("d_model"),
        "encoder_ffn_embed_dim": value("encoder_ffn_dim"), "decoder_ffn_embed_dim": value("decoder_ffn_dim"),
        "encoder_layers": value("encoder_layers"), "decoder_layers": value("decoder_layers"),
        "encoder_attention_heads": value("encoder_attention_heads"),
        "decoder_attention_heads": value("decoder_attention_heads"),
        "encoder_normalize_before": bool(value("encoder_normalize_before")),
        "decoder_normalize_before": bool(value("decoder_normalize_before")),
        "max_source_positions": value("max_position_embeddings"),
        "max_target_positions": value("max_position_embeddings"),
        "activation_fn": activations[value("activation_function")],
        "dropout": float(value("dropout")),
        "attention_dropout": float(value("attention_dropout")),
        "activation_dropout": float(value("activation_dropout")),
        "no_scale_embedding": not value("scale_embedding"),
        "layernorm_embedding": bool(value("layernorm_embedding")),
        "patch_layernorm_embedding": bool(value("patch_layernorm_embedding")),
        "code_layernorm_embedding": bool(value("code_layernorm_embedding")),
        "add_type_embedding": bool(value("add_type_embedding")),
        "resnet_type": value("resnet_type"),
        "token_bucket_size": value("token_bucket_size"),
        "image_bucket_size": value("image_bucket_size"),
        "attn_scale_factor": float(value("attn_scale_factor")),
        "code_image_size": value("code_image_size"),
        "encoder_drop_path_rate": float(value("encoder_drop_path_rate")),
        "decoder_drop_path_rate": float(value("decoder_drop_path_rate")),
        "resnet_drop_path_rate": float(value("resnet_drop_path_rate")),
        "disable_entangle": True,
        "scale_attn": normformer, "scale_fc": normformer,
        "scale_heads": True,  # both ports always have c_attn
        "scale_resids": False,
        "sync_bn": False, "freeze_resnet": False,
        "share_decoder_input_output_embed": True,
    }
    _warn_drop_path(config, "the source", report)
    return args


def _warn_drop_path(config: Dict, what: str, report: Report) -> None:
    rates = {name: config.get(name, 0.0) for name in ("encoder_drop_path_rate", "decoder_drop_path_rate", "resnet_drop_path_rate")}
    used = {name: rate for name, rate in rates.items() if rate}
    if used:
        report.warn(f"{what} trains with drop path ({', '.join(f'{n}={r}' for n, r in used.items())}): ModelScope and "
                    "the HF port drop a residual branch per position, ofa_sic and OFA-main per sample, so fine-tuning "
                    "differs between them (inference does not: drop path is off in eval)")


def pick_arch(model_args: Dict) -> Tuple[str, List[str]]:
    """The registered ofa arch whose sizes equal `model_args` (`ofa_large` if none), and the option
    names whose values differ from that arch's defaults (they are stored explicitly either way)."""
    from fairseq.models import ARCH_CONFIG_REGISTRY

    sizes = ("encoder_embed_dim", "encoder_ffn_embed_dim", "encoder_layers", "encoder_attention_heads",
             "decoder_layers", "decoder_attention_heads", "resnet_type")
    best = ("ofa_large", None)
    for arch in ("ofa_demo", "ofa_tiny", "ofa_medium", "ofa_base", "ofa_large", "ofa_huge"):
        defaults = Namespace()
        ARCH_CONFIG_REGISTRY[arch](defaults)
        if all(getattr(defaults, name) == model_args[name] for name in sizes):
            differing = [name for name, v in model_args.items() if getattr(defaults, name, None) != v]
            if best[1] is None or len(differing) < len(best[1]):
                best = (arch, differing)
    if best[1] is None:
        defaults = Namespace()
        ARCH_CONFIG_REGISTRY["ofa_large"](defaults)
        best = ("ofa_large", [name for name, v in model_args.items() if getattr(defaults, name, None) != v])
    return best
