#!/usr/bin/env bash
# The checksum property test with a fixed seed, bounded: one table for every
# type family (the built-in ones, citext, hstore, an enum, a domain, a
# composite, arrays of them), its equal-value rewrite (scale, storage,
# TOAST, NULL bitmap, column and row order, session settings) keeping the
# checksum, eight mutations each judged against EXCEPT ALL, and copies on a
# second server whose types have other OIDs.  test/fuzz/checksum_property.sh
# runs the same for long under make fuzz.
PROP_SEED=${PROP_SEED:-20261207} PROP_ROUNDS=1 PROP_MUTATIONS=${PROP_MUTATIONS:-8} \
  exec bash "$(dirname "$0")/../fuzz/checksum_property.sh"
