"""Building blocks shared by the networks: layer choice by dimension, conventions, LBMNet and PMSAN blocks, decoders."""
