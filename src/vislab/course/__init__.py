"""Everything that exists only for the course (NTU DLCV HW1) on top of vislab's generic core:
its land-cover data set spec (with the red-as-urban rule and six scored classes), its data
layouts and download, the reproduce profiles and the `vislab submission` folder."""
