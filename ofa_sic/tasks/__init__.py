"""fairseq tasks of the plugin: importing this registers `style_caption`."""
from ofa_sic.tasks import style_caption  # noqa: F401
