//! cgroups: v2 first, v1 per controller where v2 lacks it.
