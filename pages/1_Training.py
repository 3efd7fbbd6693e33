"""Live training: progress and ETA, losses (L_WCE, L_RR), accuracy, learning rate, throughput, log."""
import time

import pandas as pd
import streamlit as st

from studio import ui
from scn import analysis, charts

ui.page("Training")
reader = ui.pick_run()


def rank_reg_help(epochs) -> str:
    """What the rank-regularization line means, and its share epoch by epoch."""
    shares = [f"{int(e)}: {share:.0%}" for e, share in zip(epochs["epoch"], epochs["rr_active_share"])
              if pd.notna(share)]
    return ("The share of the epoch's training steps on which the hinge max(0, margin_1 − (mean alpha "
            "of the high group − mean alpha of the low group)) was above 0, so that rank regularization "
            "pushed the groups apart. By epoch: " + (", ".join(shares) or "not recorded"))


def live() -> None:
    with ui.run_guard(reader):
        status = ui.status_panel(reader)
        if status["state"] == "damaged":
            return
        ui.collapse_banner(reader)
        config = reader.config()
        steps, epochs = reader.step_metrics(), reader.epoch_metrics()
        total = status["total_epochs"] or config.get("epochs")
        done, left = analysis.progress(steps, total_epochs=total,
                                       steps_per_epoch=status["steps_per_epoch"])
        if status["state"] == "finished":
            done, left = 1.0, None
        eta = f", about {left / 60:.1f} min left" if left is not None and status["alive"] else ""
        epoch = int(epochs["epoch"].max()) if len(epochs) else 0
        st.progress(done, text=f"{epoch} of {total} epochs done ({done:.0%}){eta}")
        if not len(steps):
            st.info("No training steps logged yet: the trainer is starting (building the dataset "
                    "cache, on first use the synth-face backbone, and the model).")
            if tail := reader.log_tail(lines=12):
                st.code(tail, language="text")
            return
        last_epoch = epochs.iloc[-1] if len(epochs) else None
        metrics = st.columns(4)
        metrics[0].metric("Test accuracy", "–" if last_epoch is None else f"{last_epoch['test_accuracy']:.1%}")
        metrics[1].metric("Train accuracy (batch, on current labels)", f"{steps['accuracy'].iloc[-1]:.1%}",
                          help="On the labels the batch was trained with: relabels included")
        metrics[2].metric("Images / s", f"{steps['images_per_s'].iloc[-1]:.0f}")
        metrics[3].metric("Learning rate", f"{steps['lr'].iloc[-1]:.2g}")
        options = reader.train_config()
        run = dict(color=ui.run_colors()[reader.name], total_epochs=total)
        left_col, right_col = st.columns(2)
        with left_col:
            ui.plotly(charts.loss_figure(steps, epochs, rank_reg=options.uses_rank_reg,
                                         relabel_epoch=options.relabel_start, **run))
            if last_epoch is not None:
                # L_RR is a hinge: a flat zero curve may mean it never acted, so say how often it did.
                st.caption(analysis.rank_reg_activity(last_epoch, rank_reg=options.uses_rank_reg),
                           help=rank_reg_help(epochs) if options.uses_rank_reg else None)
            ui.plotly(charts.step_series_figure(steps, column="lr", title="Learning rate", y="lr", **run))
        with right_col:
            ui.plotly(charts.accuracy_figure(epochs, relabel_epoch=options.relabel_start, **run))
            ui.plotly(charts.step_series_figure(steps, column="images_per_s", title="Throughput",
                                                y="images/s", **run))
        with st.expander("Log (last lines)"):
            st.code(reader.log_tail(lines=30) or "(empty)", language="text")
        st.caption(f"Updated {time.strftime('%H:%M:%S')}; refreshes every {ui.REFRESH_SECONDS} s.")


if reader is not None:
    ui.run_controls(reader, key="training")
    ui.live(live, readers=[reader])
