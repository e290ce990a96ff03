"""Caption metrics: CIDEr-D (the SCST reward and validation) and its document frequencies, the COCO metrics
of `ofa-sic evaluate` and `--scoring coco_caption`, SPICE, diversity, style accuracy and
sensitivity, paired bootstrap."""
