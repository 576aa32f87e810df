"""Video upscaling: probe, keyframe-aligned segments, the overlapped decode/infer/encode pipeline, assembly.

PyAV is imported only inside these modules' functions, so importing the
package costs nothing until a video is opened.
"""

from upscaler.video.job import JobResult, run_job
from upscaler.video.probe import VideoError, VideoInfo, probe
from upscaler.video.segments import Segment, plan_segments
from upscaler.video.transcode import EncodeSettings

__all__ = ["EncodeSettings", "JobResult", "Segment", "VideoError", "VideoInfo", "plan_segments", "probe", "run_job"]
