"""Everything that runs on Ray: Tune sweeps (and batch inference on Ray Data). The only
package that imports Ray."""
