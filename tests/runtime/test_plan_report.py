from gptpipe.config.dims import DropConfig
from gptpipe.runtime.plan_report import _dropout_text


def test_dropout_text_names_kept_shares():
    assert _dropout_text(DropConfig.decode("drop1ch1")) == "no dropout"
    assert _dropout_text(DropConfig.decode("drop0.9ch1")) == "keep 90% of input tokens and 100% of state channels"
    assert _dropout_text(DropConfig.decode("drop1ch0.75")) == "keep 100% of input tokens and 75% of state channels"
